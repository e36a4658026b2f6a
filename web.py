"""python web.py robots/<name> [--port 8000]  ==  voiceplat web robots/<name> [--port 8000]"""

import sys

from voiceplat.cli import main

if __name__ == "__main__":
    sys.exit(main(["web", *sys.argv[1:]]))
