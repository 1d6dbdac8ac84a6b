"""cicsim: children in care in England, one model, stock-flow and discrete-event engines.

Importing the package changes nothing in the environment: the one-BLAS-thread default
is set by the command line (:func:`sim.cli.main`) and the Makefile, not here.
"""

__version__ = "0.1.0"
