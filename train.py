"""python train.py --gin gin/drums.gin [--gin more.gin] [--bind 'a.b = 1'] [--db PATH] [--name RUN] [--resume]

The same as ``latentlive train``; runs under ``torchrun --nproc_per_node N train.py ...`` too.
"""

import sys

from latentlive.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
