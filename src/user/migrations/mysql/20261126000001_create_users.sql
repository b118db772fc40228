-- Accounts: Django's auth_user fields plus the WeChat identity and profile.
-- Timestamps are unix seconds; booleans are TINYINT(1).
-- Identifiers compare case-sensitively (utf8mb4_bin): two openids differing only in case are
-- two different WeChat users.
CREATE TABLE IF NOT EXISTS users (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    username VARCHAR(150) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    password VARCHAR(255) NOT NULL DEFAULT '',
    email VARCHAR(254) NOT NULL DEFAULT '',
    is_staff TINYINT(1) NOT NULL DEFAULT 0,
    is_superuser TINYINT(1) NOT NULL DEFAULT 0,
    is_active TINYINT(1) NOT NULL DEFAULT 1,
    date_joined BIGINT NOT NULL,
    last_login BIGINT NULL,
    openid VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    unionid VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
    session_key VARCHAR(128) NULL,
    nickname VARCHAR(64) NOT NULL DEFAULT '',
    avatar_url VARCHAR(512) NOT NULL DEFAULT '',
    gender INT NOT NULL DEFAULT 0,
    country VARCHAR(64) NOT NULL DEFAULT '',
    province VARCHAR(64) NOT NULL DEFAULT '',
    city VARCHAR(64) NOT NULL DEFAULT '',
    language VARCHAR(32) NOT NULL DEFAULT '',
    phone VARCHAR(32) NOT NULL DEFAULT '',
    phone_country_code VARCHAR(8) NOT NULL DEFAULT '',
    token_version BIGINT NOT NULL DEFAULT 0,
    -- Written only by the insert that created the row: tells an upsert whether it inserted.
    created_nonce VARCHAR(36) NULL,
    UNIQUE KEY users_username (username),
    UNIQUE KEY users_openid (openid),
    KEY users_unionid (unionid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
