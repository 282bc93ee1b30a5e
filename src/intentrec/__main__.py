"""``python -m intentrec`` and ``torchrun -m intentrec``."""

from intentrec.cli import main

if __name__ == "__main__":
    main()
