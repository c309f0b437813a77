# Production (PROD). Facts from the BaRS guide "Connect as a receiver" and the implementation
# guide's "Firewall exceptions" (March 2026).

fqdn_conventions = {
    # Supplier-hosted (multi-tenanted) solutions.
    "supplier": "BaRS-PROD-{ods}.{supplier}.thirdparty.nhs.uk",
    # Service-provider-hosted (on-premise) solutions.
    "provider": "BaRS-PROD-{ods}.{provider}.nhs.uk",
}

# BaRS proxy egress addresses for PROD: the only sources allowed to reach the listener.
proxy_addresses = ["34.89.0.111", "34.89.69.6"]

# CSRs go to the DIR team, only after Solution Assurance has issued the Technical Conformance
# certificate.
request_route = "dir"
certificate_request_email = "dir@nhs.net"

# The PROD G2 chain: every CA file in files/ca/prod/ must match one of these, and each pin one file.
ca_pins = {
    "NHS Root Authority G2": "7E:05:FA:62:9B:5E:66:DB:B8:0E:97:41:7D:24:73:CB:CF:5A:31:06",  # expires 2042-04-07
    "NHS Authentication G2": "1F:30:1F:CA:68:4D:9E:13:AD:4D:BA:7C:8F:2B:A1:26:F9:C4:C0:15",  # expires 2032-09-15
}
