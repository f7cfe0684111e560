"""The doit build of a zoo: ``tasks`` describes the tasks (what ``dodo.py`` re-exports), each
running an action of ``actions`` in a worker, which calls the build ``steps`` (convert,
optimize, export) or the verifier; ``layout`` names the files of the build tree, ``run`` is one
doit run (the zoo it builds, each stage's code fingerprint, its end); ``fingerprints`` is
the code closure a stage's rerun depends on; ``lock`` keeps two builds out of one directory and
``state`` records what each run did, which ``finish`` writes at the end of every run with the
report."""
