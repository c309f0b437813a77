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
