"""python run.py robots/<name>  ==  voiceplat serve robots/<name>"""

import sys

from voiceplat.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
