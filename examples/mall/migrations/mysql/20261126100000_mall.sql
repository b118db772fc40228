CREATE TABLE categories (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(50) NOT NULL UNIQUE,
    sort_order BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE goods (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    description VARCHAR(2000) NOT NULL DEFAULT '',
    price BIGINT NOT NULL CHECK (price >= 0),
    stock BIGINT NOT NULL DEFAULT 0 CHECK (stock >= 0),
    category BIGINT NOT NULL REFERENCES categories(id),
    on_sale TINYINT(1) NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL
);
CREATE INDEX goods_category ON goods(category);
CREATE INDEX goods_price ON goods(price);
CREATE INDEX goods_created_at ON goods(created_at);

CREATE TABLE cart_items (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    goods BIGINT NOT NULL REFERENCES goods(id),
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    created_at BIGINT NOT NULL,
    UNIQUE (user_id, goods)
);

CREATE TABLE orders (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id),
    status VARCHAR(16) NOT NULL,
    total BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX orders_user ON orders(user_id);

CREATE TABLE order_items (
    id BIGINT AUTO_INCREMENT PRIMARY KEY,
    order_id BIGINT NOT NULL REFERENCES orders(id),
    goods BIGINT NOT NULL REFERENCES goods(id),
    name VARCHAR(100) NOT NULL,
    price BIGINT NOT NULL,
    quantity BIGINT NOT NULL
);
CREATE INDEX order_items_order ON order_items(order_id);
