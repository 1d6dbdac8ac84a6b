"""An authority's own SSDA903 child-level data: read and validate the header and
episodes files (:mod:`.reader`), build periods of care (:mod:`.periods`), estimate
rates (:mod:`.estimator`) and the authority's parameters (:mod:`.authority`), and draw
synthetic extracts from known rates (:mod:`.synth`).  See ``docs/ssda903.md``."""
