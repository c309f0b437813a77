# Integration (INT): path-to-live environment. Facts from the BaRS guide "Connect as a receiver"
# and the implementation guide's "Firewall exceptions" (March 2026).

fqdn_conventions = {
    "supplier": "BaRS-INT-{ods}.{supplier}.thirdparty.nhs.uk",
}

# BaRS proxy egress addresses for INT: the only sources allowed to reach the listener.
proxy_addresses = ["35.197.254.55", "35.246.55.143"]

# Certificates are requested from ITOC on the "Combined endpoint and service registration" form.
request_route = "itoc"
