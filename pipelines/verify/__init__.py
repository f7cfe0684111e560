"""Verification: ``measure`` runs an artifact and its source model on the same inputs
(``samples``: decoded images, ``reference_preprocess``: the verifier's own transcription of the
preprocessing), compares them (``metrics``), writes the golden data (``golden``) and gates the
verdict (``bisect`` finds the first diverging layer of a failing artifact); ``regress`` compares a build's golden outputs with an earlier build's."""
