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
