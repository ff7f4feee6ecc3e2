"""Cloud settings, from arguments or from the environment (MCODE_CLOUD_*)."""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass

ENV_PREFIX = "MCODE_CLOUD_"
ADMIN_KEY_MIN_LEN = 32  # the bootstrap admin key; issued keys are 46 characters
MASTER_KEY_LEN = 32  # bytes: an AES-256-GCM key (cloud/store/vault.py)


class SettingsError(ValueError):
    """Settings a cloud must not run with; the message never contains a secret's value."""

    def __init__(self, message: str, message_zh: str) -> None:
        super().__init__(f"{message} / {message_zh}")
        self.message, self.message_zh = message, message_zh


def parse_master_keys(value: str) -> list[bytes]:
    """MCODE_CLOUD_MASTER_KEY: one or more 32-byte keys, each as 64 hex digits or base64, separated
    by commas. The first seals new secrets; all of them open (so a new key can go first while
    secrets sealed under the old one are still read). Empty: no key (the cloud refuses to start)."""
    keys = []
    for i, part in enumerate(p.strip() for p in value.split(",") if p.strip()):
        try:
            raw = bytes.fromhex(part) if len(part) == 2 * MASTER_KEY_LEN else base64.b64decode(
                part.replace("-", "+").replace("_", "/"), validate=True)
        except (ValueError, binascii.Error):
            raw = b""
        if len(raw) != MASTER_KEY_LEN:
            raise SettingsError(
                f"{ENV_PREFIX}MASTER_KEY: key {i + 1} is not {MASTER_KEY_LEN} bytes as 64 hex digits or "
                f"base64; make one with: python -c 'import secrets; print(secrets.token_hex(32))'",
                f"{ENV_PREFIX}MASTER_KEY：第 {i + 1} 个密钥不是 {MASTER_KEY_LEN} 字节"
                f"（64 位十六进制或 base64）；可用此命令生成："
                f"python -c 'import secrets; print(secrets.token_hex(32))'")
        keys.append(raw)
    return keys


@dataclass(frozen=True)
class Settings:
    db_url: str = "sqlite:///mcode-cloud.db"
    admin_key: str = ""  # empty: the admin API refuses every request; else at least 32 characters
    # Seals device root keys and keys account references at rest (parse_master_keys); a running
    # cloud refuses to start without one. Secret: from the environment only.
    master_key: str = ""
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    broker_user: str = "cloud"
    broker_password: str = ""
    broker_keepalive: int = 60  # seconds between MQTT PINGREQs when idle
    # TLS to the broker when broker_tls_ca is set: the CA of the broker's certificate (hostname
    # checked), and optionally this client's own certificate and key.
    broker_tls_ca: str = ""
    broker_tls_cert: str = ""
    broker_tls_key: str = ""
    # TCP_NODELAY on every MQTT socket: a batch and its ack are small writes that Nagle's algorithm
    # would hold back for the peer's delayed ACK.
    broker_tcp_nodelay: bool = True
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Cookies carry Secure: browsers send them over HTTPS only (and to http://localhost). Plain
    # HTTP elsewhere needs MCODE_CLOUD_INSECURE_HTTP=1, which the local demo sets and says so.
    cookie_secure: bool = True
    session_ttl_s: int = 8 * 3600  # a merchant page login lasts this long
    checkout_ttl_s: int = 15 * 60  # a shopper's checkout code (Pay at the counter) is valid this long
    max_body_bytes: int = 64 * 1024  # a larger request body is refused (413) before it is read
    # Ed25519 key that signs gateway configs (PEM); made on first use, kept out of git (*.key).
    signing_key: str = "mcode-cloud-signing.key"
    # Keyless endpoints (GET /r/{code}, POST /entries/{id}/share): requests per client address;
    # wrong code guesses per campaign, from clients with recent wrong guesses (fail) and from clients
    # without (clean); wrong guesses per client address, which say whether it is clean. Kept in the
    # database, shared by every API process (docs/cloud.md, "Rate limits"). burst 0 = no limit.
    rate_client_per_s: float = 10.0
    rate_client_burst: int = 200
    rate_campaign_fail_per_s: float = 0.1
    rate_campaign_fail_burst: int = 20
    rate_campaign_clean_per_s: float = 0.5
    rate_campaign_clean_burst: int = 300
    rate_address_fail_per_s: float = 1 / 3600
    rate_address_fail_burst: int = 2
    # Share codes: at most this many per visitor per campaign (409), and per client address a
    # bucket of new share codes (429).
    share_max_per_visitor: int = 5
    rate_share_address_per_s: float = 20 / 3600
    rate_share_address_burst: int = 20
    # Wrong logins at POST /login, per client address and per login name (cloud/services/login_limits.py)
    rate_login_per_s: float = 10 / 3600
    rate_login_burst: int = 10
    # Proxies whose X-Forwarded-For is believed (comma-separated addresses); empty: none, the TCP
    # peer is the client.
    trusted_proxies: str = ""
    # Signs visitor tokens (HMAC-SHA256); every API process must have the same. Empty: derived from
    # admin_key. Secret: from the environment only.
    visitor_secret: str = ""
    # What the ingest quarantine keeps per gateway; beyond it refusals are counted, not kept.
    quarantine_quota_bytes: int = 1024 * 1024
    quarantine_quota_rows: int = 10_000
    # The trust log (docs/trust.md): on, batches, entries, shares, orders and postings are logged;
    # its checkpoints are signed with the key in the file log_signing_key (a C2SP signer key named
    # log_origin, made on first use; empty: derived from the master key), every
    # log_checkpoint_interval_s by `mcode cloud run`; the cosignatures of witness_keys (verifier
    # keys, comma-separated) are kept and served.
    trust_log: bool = True
    log_signing_key: str = ""
    log_origin: str = "mcode.local/log"
    log_checkpoint_interval_s: float = 60.0
    witness_keys: str = ""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            return e.get(ENV_PREFIX + name, default)

        d = cls()
        return cls(
            db_url=get("DB_URL", d.db_url),
            admin_key=get("ADMIN_KEY", d.admin_key),
            master_key=get("MASTER_KEY", d.master_key),
            broker_host=get("BROKER_HOST", d.broker_host),
            broker_port=int(get("BROKER_PORT", str(d.broker_port))),
            broker_user=get("BROKER_USER", d.broker_user),
            broker_password=get("BROKER_PASSWORD", d.broker_password),
            broker_keepalive=int(get("BROKER_KEEPALIVE", str(d.broker_keepalive))),
            broker_tls_ca=get("BROKER_TLS_CA", d.broker_tls_ca),
            broker_tls_cert=get("BROKER_TLS_CERT", d.broker_tls_cert),
            broker_tls_key=get("BROKER_TLS_KEY", d.broker_tls_key),
            broker_tcp_nodelay=get("BROKER_TCP_NODELAY", "1").lower() in ("1", "true", "yes"),
            http_host=get("HTTP_HOST", d.http_host),
            http_port=int(get("HTTP_PORT", str(d.http_port))),
            cookie_secure=get("INSECURE_HTTP", "0").lower() not in ("1", "true", "yes"),
            session_ttl_s=int(get("SESSION_TTL_S", str(d.session_ttl_s))),
            checkout_ttl_s=int(get("CHECKOUT_TTL_S", str(d.checkout_ttl_s))),
            max_body_bytes=int(get("MAX_BODY_BYTES", str(d.max_body_bytes))),
            signing_key=get("SIGNING_KEY", d.signing_key),
            rate_client_per_s=float(get("RATE_CLIENT_PER_S", str(d.rate_client_per_s))),
            rate_client_burst=int(get("RATE_CLIENT_BURST", str(d.rate_client_burst))),
            rate_campaign_fail_per_s=float(get("RATE_CAMPAIGN_FAIL_PER_S", str(d.rate_campaign_fail_per_s))),
            rate_campaign_fail_burst=int(get("RATE_CAMPAIGN_FAIL_BURST", str(d.rate_campaign_fail_burst))),
            rate_campaign_clean_per_s=float(get("RATE_CAMPAIGN_CLEAN_PER_S",
                                                str(d.rate_campaign_clean_per_s))),
            rate_campaign_clean_burst=int(get("RATE_CAMPAIGN_CLEAN_BURST", str(d.rate_campaign_clean_burst))),
            rate_address_fail_per_s=float(get("RATE_ADDRESS_FAIL_PER_S",
                                              str(d.rate_address_fail_per_s))),
            rate_address_fail_burst=int(get("RATE_ADDRESS_FAIL_BURST", str(d.rate_address_fail_burst))),
            share_max_per_visitor=int(get("SHARE_MAX_PER_VISITOR", str(d.share_max_per_visitor))),
            rate_share_address_per_s=float(get("RATE_SHARE_ADDRESS_PER_S",
                                               str(d.rate_share_address_per_s))),
            rate_share_address_burst=int(get("RATE_SHARE_ADDRESS_BURST", str(d.rate_share_address_burst))),
            rate_login_per_s=float(get("RATE_LOGIN_PER_S", str(d.rate_login_per_s))),
            rate_login_burst=int(get("RATE_LOGIN_BURST", str(d.rate_login_burst))),
            trusted_proxies=get("TRUSTED_PROXIES", d.trusted_proxies),
            visitor_secret=get("VISITOR_SECRET", d.visitor_secret),
            quarantine_quota_bytes=int(get("QUARANTINE_QUOTA_BYTES", str(d.quarantine_quota_bytes))),
            quarantine_quota_rows=int(get("QUARANTINE_QUOTA_ROWS", str(d.quarantine_quota_rows))),
            trust_log=get("TRUST_LOG", "1").lower() in ("1", "true", "yes"),
            log_signing_key=get("LOG_SIGNING_KEY", d.log_signing_key),
            log_origin=get("LOG_ORIGIN", d.log_origin),
            log_checkpoint_interval_s=float(get("LOG_CHECKPOINT_INTERVAL_S",
                                                str(d.log_checkpoint_interval_s))),
            witness_keys=get("WITNESS_KEYS", d.witness_keys),
        )

    def master_keys(self) -> list[bytes]:
        """The master keys, current first; raises SettingsError if there is none or one is bad."""
        keys = parse_master_keys(self.master_key)
        if not keys:
            raise SettingsError(
                f"no master key: set {ENV_PREFIX}MASTER_KEY to 32 random bytes as hex (python -c 'import "
                f"secrets; print(secrets.token_hex(32))'); the cloud does not store device keys in plaintext",
                f"没有主密钥：请将 {ENV_PREFIX}MASTER_KEY 设为 32 个随机字节的十六进制（python -c 'import "
                f"secrets; print(secrets.token_hex(32))'）；云端不以明文保存设备密钥")
        return keys

    def check(self) -> None:
        """Refuse settings a running cloud must not start with (raises SettingsError)."""
        self.master_keys()
        if self.admin_key and len(self.admin_key) < ADMIN_KEY_MIN_LEN:
            raise SettingsError(
                f"{ENV_PREFIX}ADMIN_KEY is {len(self.admin_key)} characters; it must be at least "
                f"{ADMIN_KEY_MIN_LEN} (python -c 'import secrets; print(secrets.token_urlsafe(32))'), or "
                f"empty to turn the admin API off",
                f"{ENV_PREFIX}ADMIN_KEY 只有 {len(self.admin_key)} 个字符，至少须 {ADMIN_KEY_MIN_LEN} 个"
                f"（python -c 'import secrets; print(secrets.token_urlsafe(32))'），或留空以关闭管理接口")
