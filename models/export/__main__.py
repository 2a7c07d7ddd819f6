import sys

from models.export.exporter import main

sys.exit(main())
