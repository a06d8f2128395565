"""``python -m fcnseg``: the command line (also what ``torchrun -m fcnseg train`` runs)."""

from fcnseg.cli import main

raise SystemExit(main())
