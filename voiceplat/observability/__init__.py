"""Operations: Prometheus metrics of a robot process and its readiness (served on the robot's
own port by telephony/http_routes.py)."""
