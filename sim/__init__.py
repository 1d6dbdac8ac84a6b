"""cicsim: children in care in England, one model, stock-flow and discrete-event engines."""

import os

# The engines multiply many small matrices (59 x 59 per age band and month).  Threaded
# BLAS only adds overhead at that size and, on a shared 2-core machine, made runs up to
# 7x slower; one thread is the default unless the user sets otherwise.  This must run
# before numpy loads its BLAS, hence here.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

__version__ = "0.1.0"
