//! The WeChat part: the API client, the access_token, `encryptedData`, and the login, phone
//! and profile endpoints over real HTTP against a FakeWeChat.

#[path = "../auth_fixtures/mod.rs"]
mod auth_fixtures;
#[path = "../databases/mod.rs"]
mod databases;
#[path = "../running_app/mod.rs"]
mod running_app;

mod access_token;
mod client;
mod crypto;
mod login;
mod profile;
