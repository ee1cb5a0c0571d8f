"""python -m container_kernel ... (what kernel.json's argv runs)."""
import sys

from .cli import main

sys.exit(main())
