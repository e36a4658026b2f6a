"""Personal data: caller numbers masked in logs, records kept only so long, one caller forgotten."""
