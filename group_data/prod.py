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
