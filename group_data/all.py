# Defaults for every environment. An inventory's `settings:` block overrides any of these;
# README "Inventory settings" documents each one.

# Root-only directory on the host holding one directory per endpoint FQDN.
base_dir = "/etc/bars-receiver"

# TLS-MA listener port the BaRS proxy connects to.
listen_port = 443

# RSA key size for new keys (2048, 3072 or 4096). Existing keys are never regenerated.
key_size = 2048

# Name of the environment variable (a CI secret) holding the key passphrase; None = no passphrase.
key_passphrase_env = None

# Where the receiver URL goes for the Endpoint Catalogue (BaRS guide, both environments).
bars_team_email = "england.bookingandreferralstandard@nhs.net"

# Where each environment sends certificate requests by e-mail; group_data/prod.py sets DIR's.
certificate_request_email = None

# --- The TLS-MA listener (nginx) ---

# TLS versions offered to the BaRS proxy: TLSv1.2 and/or TLSv1.3, nothing older.
tls_protocols = ["TLSv1.2", "TLSv1.3"]

# TLS 1.2 suites: ECDHE with AES-GCM or ChaCha20 only (NHS Spine-family guidance uses
# ECDHE-RSA-AES-GCM). TLS 1.3 suites are OpenSSL's defaults, all strong.
tls_ciphers = (
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305"
)

# Client subject DNs (RFC 2253, as nginx shows them) allowed to call; [] = any certificate from
# the environment's CA. Others get 403.
client_dn_allowlist = []

# Seconds nginx waits for the application; below the BaRS proxy's 32 s so it gets our 504 first.
upstream_timeout = 30

# A file of CRLs (one from each CA in files/ca/<inventory>/), relative to the repository; None = no CRL.
client_crl = None

# Largest request body (MB) nginx accepts; larger ones get 413. A BaRS referral's attachments
# travel base64-encoded inside the FHIR Bundle (4/3 of their size), so 50 MB carries about 37 MB
# of documents. Bodies over 1 MB are buffered to disk, never held in memory.
max_body_size = 50

# Disable Debian's default site (port 80) when it is the package's untouched file: its enabled
# link is moved to base_dir/nginx-default-site.disabled, never deleted. A modified one is left
# in place and reported.
disable_default_site = True

# --- Issued certificates and PKCS#12 (docs/certificates.md) ---

# Fingerprints (SHA-1 or SHA-256) the CA files in files/ca/<inventory>/ must match; {} = no pins.
ca_pins = {}

# Warn, and report the endpoint as "renewing", this many days before its certificate expires.
renewal_days = 30

# PKCS#12 profile: "modern" (AES-256-CBC, PBKDF2, SHA-256 MAC) or "legacy" (3DES, SHA-1 MAC, for
# Windows Server 2016-era stacks).
pfx_profile = "modern"

# Name of the environment variable (a CI secret) holding the PFX password; None = each host
# generates its own (openssl rand) and keeps it root-only beside the PFX.
pfx_password_env = None

# Group of the application that reads the PFX; None = PFX, password and kestrel.env root-only.
app_group = None

# Where the application's files go (outside base_dir, which stays root-only): <app_dir>/<fqdn>/.
app_dir = "/etc/bars-receiver-app"
