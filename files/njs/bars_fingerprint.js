// Installed by the BaRS receiver deploy; edits here are replaced.
// Why: nginx 1.22 gives only the SHA-1 fingerprint of the client certificate ($ssl_client_fingerprint).
// This gives the SHA-256 of the verified certificate's DER as 64 lower-case hex digits, for
// X-Client-Fingerprint-SHA256; empty (the header is not sent) unless nginx verified the client.

function sha256(r) {
    if (r.variables.ssl_client_verify !== 'SUCCESS') {
        return '';
    }
    var pem = r.variables.ssl_client_raw_cert || '';
    var body = pem.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
    if (!body) {
        return '';
    }
    return require('crypto').createHash('sha256').update(Buffer.from(body, 'base64')).digest('hex');
}

export default {sha256};
