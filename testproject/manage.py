#!/usr/bin/env python
"""Run from anywhere: python testproject/manage.py <command>."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    # Import the project as the package "testproject" from the repository root; keeping this
    # directory first on the path would make testproject/celery.py shadow Celery itself.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
