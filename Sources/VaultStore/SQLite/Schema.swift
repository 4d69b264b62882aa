/// The vault's schema as frozen SQL, one migration per format version.
///
/// Never edit a migration that has shipped: add a new one. `PRAGMA user_version` holds the
/// number of migrations applied, which is the vault's format version (docs/FORMAT.md).
enum Schema {
    /// `PRAGMA application_id`: ASCII "KISV", so `file(1)`-like tools can tell a vault.
    static let applicationID: Int32 = 0x4B49_5356

    /// The format version this build writes and understands.
    static var currentVersion: Int { migrations.count }

    static let migrations: [String] = [
        // 1: keyslots, accounts, tags, audit log.
        """
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY NOT NULL,
            value ANY NOT NULL
        ) STRICT;

        CREATE TABLE keyslots (
            id          INTEGER PRIMARY KEY,
            label       TEXT NOT NULL UNIQUE,
            kdf         TEXT NOT NULL,
            opslimit    INTEGER NOT NULL,
            memlimit    INTEGER NOT NULL,
            salt        BLOB NOT NULL CHECK (length(salt) = 16),
            wrapped_key BLOB NOT NULL CHECK (length(wrapped_key) = 72),
            created_at  TEXT NOT NULL
        ) STRICT;

        CREATE TABLE accounts (
            id                 TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 32),
            name               TEXT NOT NULL UNIQUE,
            environment        TEXT NOT NULL CHECK (environment IN ('real', 'mock')),
            appkey_fp          BLOB NOT NULL UNIQUE CHECK (length(appkey_fp) = 32),
            appkey             BLOB NOT NULL,
            appsecret          BLOB NOT NULL,
            account_no         BLOB,
            hts_id             BLOB,
            created_at         TEXT NOT NULL,
            updated_at         TEXT NOT NULL,
            secrets_updated_at TEXT NOT NULL
        ) STRICT;

        CREATE TABLE account_tags (
            account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            tag        TEXT NOT NULL,
            PRIMARY KEY (account_id, tag)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX account_tags_by_tag ON account_tags(tag);

        CREATE TABLE audit (
            seq     INTEGER PRIMARY KEY,
            at      TEXT NOT NULL,
            actor   TEXT NOT NULL,
            keyslot TEXT,
            action  TEXT NOT NULL,
            account TEXT,
            outcome TEXT NOT NULL,
            detail  TEXT NOT NULL,
            mac     BLOB NOT NULL CHECK (length(mac) = 32)
        ) STRICT;
        CREATE INDEX audit_by_account ON audit(account);
        """,
        // 2: issued credentials and the issuance state behind single-flight.
        """
        CREATE TABLE credentials (
            account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            kind       TEXT NOT NULL CHECK (kind IN ('approval', 'token')),
            slot       TEXT NOT NULL CHECK (slot IN ('current', 'previous')),
            id         TEXT NOT NULL CHECK (length(id) = 32),
            value      BLOB NOT NULL,
            issued_at  TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            PRIMARY KEY (account_id, kind, slot)
        ) STRICT, WITHOUT ROWID;

        CREATE TABLE issuance (
            account_id       TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
            kind             TEXT NOT NULL CHECK (kind IN ('approval', 'token')),
            lease_owner      TEXT,
            lease_expires_at TEXT,
            last_request_at  TEXT,
            rejected_code    TEXT,
            rejected_message TEXT,
            last_error       TEXT,
            PRIMARY KEY (account_id, kind)
        ) STRICT, WITHOUT ROWID;
        """,
        // 3: field keys bind the account's name and environment (docs/FORMAT.md, "Keys");
        // an older vault's fields are re-sealed at its first unlocked write.
        """
        INSERT INTO meta(key, value) VALUES ('field_binding', 'pending');
        """,
    ]
}
