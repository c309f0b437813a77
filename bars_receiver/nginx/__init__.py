"""The TLS-MA listener (``tasks/nginx.py``): the configuration rendered from
``files/templates/nginx-receiver.conf.j2`` and put live only after ``nginx -t`` (``config``), every
rendered value escaped (``escape``), the result parsed and checked against the settings before
upload (``verify``), nginx's own error answers as BaRS OperationOutcomes (``edge_errors``) and
Debian's default site moved aside (``default_site``).
"""
