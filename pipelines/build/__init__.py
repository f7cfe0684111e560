"""The doit build of a zoo: ``tasks`` describes the tasks (what ``dodo.py`` re-exports), each
running a build ``steps`` function (convert, optimize, export) in a worker; ``fingerprints`` is
the code closure a stage's rerun depends on; ``lock`` keeps two builds out of one directory and
``state`` records what each run did, which ``finish`` writes at the end of every run with the
report."""
