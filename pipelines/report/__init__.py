"""The zoo report and doit's output: ``results`` writes build/report/report.json and junit.xml
(and ``html`` the index.html) from the build tree, with ``provenance`` and the drift against a
``baseline``; ``doit_reporter`` and ``zoo_reporter`` are the
doit reporters that print a build's progress and write the report when any run ends."""
