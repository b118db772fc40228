-- Accounts: Django's auth_user fields plus the WeChat identity and profile.
-- Timestamps are unix seconds; booleans are 0/1.
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username VARCHAR(150) NOT NULL UNIQUE,
    password VARCHAR(255) NOT NULL DEFAULT '',
    email VARCHAR(254) NOT NULL DEFAULT '',
    is_staff INTEGER NOT NULL DEFAULT 0,
    is_superuser INTEGER NOT NULL DEFAULT 0,
    is_active INTEGER NOT NULL DEFAULT 1,
    date_joined BIGINT NOT NULL,
    last_login BIGINT NULL,
    openid VARCHAR(64) NULL UNIQUE,
    unionid VARCHAR(64) NULL,
    session_key VARCHAR(128) NULL,
    nickname VARCHAR(64) NOT NULL DEFAULT '',
    avatar_url VARCHAR(512) NOT NULL DEFAULT '',
    gender INTEGER NOT NULL DEFAULT 0,
    country VARCHAR(64) NOT NULL DEFAULT '',
    province VARCHAR(64) NOT NULL DEFAULT '',
    city VARCHAR(64) NOT NULL DEFAULT '',
    language VARCHAR(32) NOT NULL DEFAULT '',
    phone VARCHAR(32) NOT NULL DEFAULT '',
    phone_country_code VARCHAR(8) NOT NULL DEFAULT '',
    token_version BIGINT NOT NULL DEFAULT 0,
    -- Written only by the insert that created the row: tells an upsert whether it inserted.
    created_nonce VARCHAR(36) NULL
);

CREATE INDEX IF NOT EXISTS users_unionid ON users (unionid);
