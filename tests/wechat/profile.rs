//! `GET /users/me/` and `PATCH /users/me/`, end to end over HTTP.

use serde_json::json;
use wxrest::wechat::{FakeWeChat, Script};

use crate::running_app::{App, start};

async fn logged_in() -> (FakeWeChat, App, String, i64) {
    let fake = FakeWeChat::start().await;
    fake.script_code("code-1", Script::session("openid-1"));
    let app = start(&fake).await;
    let (token, id) = app.logged_in("code-1").await;
    (fake, app, token, id)
}

#[tokio::test]
async fn get_me_returns_the_callers_profile() {
    let (_fake, app, token, id) = logged_in().await;
    for path in ["/users/me/", "/users/me"] {
        let answer = app.get(path, Some(&token)).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
        assert_eq!(answer.body["id"], id);
        assert_eq!(answer.body["nickname"], "");
        assert!(answer.body.get("openid").is_none());
        assert!(answer.body.get("session_key").is_none());
    }
}

#[tokio::test]
async fn patch_me_updates_the_profile_and_get_shows_it() {
    let (_fake, app, token, id) = logged_in().await;
    let answer = app
        .patch(
            "/users/me/",
            Some(&token),
            json!({"nickName": "Tea Lover", "gender": 1, "city": "Hangzhou", "avatar_url": "https://a/b.png"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["id"], id);
    assert_eq!(answer.body["nickname"], "Tea Lover");
    assert_eq!(answer.body["gender"], 1);
    let me = app.get("/users/me", Some(&token)).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["nickname"], "Tea Lover");
    assert_eq!(me.body["city"], "Hangzhou");
    assert_eq!(me.body["avatar_url"], "https://a/b.png");
    assert_eq!(me.body["province"], "");
}

#[tokio::test]
async fn patch_me_without_trailing_slash_works() {
    let (_fake, app, token, _) = logged_in().await;
    let answer = app
        .patch("/users/me", Some(&token), json!({"language": "en"}))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["language"], "en");
}

#[tokio::test]
async fn patch_me_with_a_too_long_nickname_is_a_field_error() {
    let (_fake, app, token, _) = logged_in().await;
    let answer = app
        .patch(
            "/users/me/",
            Some(&token),
            json!({"nickname": "x".repeat(65)}),
        )
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        json!({"nickname": ["Ensure this field has no more than 64 characters."]})
    );
    let me = app.get("/users/me/", Some(&token)).await;
    assert_eq!(me.body["nickname"], "");
}

#[tokio::test]
async fn patch_me_with_wrong_types_lists_every_field_error() {
    let (_fake, app, token, _) = logged_in().await;
    let answer = app
        .patch(
            "/users/me/",
            Some(&token),
            json!({"gender": "male", "city": ["a"]}),
        )
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        json!({"gender": ["A valid integer is required."], "city": ["Not a valid string."]})
    );
}

#[tokio::test]
async fn patch_me_with_an_invalid_gender_choice_is_a_field_error() {
    let (_fake, app, token, _) = logged_in().await;
    let answer = app
        .patch("/users/me/", Some(&token), json!({"gender": 7}))
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        json!({"gender": ["\"7\" is not a valid choice."]})
    );
}

#[tokio::test]
async fn patch_me_ignores_unknown_fields() {
    let (_fake, app, token, id) = logged_in().await;
    let answer = app
        .patch(
            "/users/me/",
            Some(&token),
            json!({"is_staff": true, "phone": "123", "nickname": "Tea"}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["is_staff"], false);
    assert_eq!(answer.body["phone"], "");
    assert_eq!(answer.body["nickname"], "Tea");
    assert!(!app.users.get(id).await.unwrap().unwrap().is_staff);
}

#[tokio::test]
async fn patch_me_with_malformed_json_is_a_parse_error() {
    let (_fake, app, token, _) = logged_in().await;
    let answer = app
        .patch_raw("/users/me/", Some(&token), "{\"nickname\":")
        .await;
    answer.assert_parse_error();
}

#[tokio::test]
async fn patch_me_with_a_non_object_body_is_a_non_field_error() {
    let (_fake, app, token, _) = logged_in().await;
    let answer = app.patch_raw("/users/me/", Some(&token), "[1]").await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.body,
        json!({"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]})
    );
}

#[tokio::test]
async fn me_without_a_token_is_401_with_the_drf_body() {
    let (_fake, app, _, _) = logged_in().await;
    for answer in [
        app.get("/users/me/", None).await,
        app.patch("/users/me/", None, json!({"nickname": "x"}))
            .await,
    ] {
        answer.assert_not_authenticated();
    }
}

#[tokio::test]
async fn me_with_a_garbage_token_is_401() {
    let (_fake, app, _, _) = logged_in().await;
    let answer = app.get("/users/me/", Some("not-a-token")).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.body["detail"], "Error decoding signature.");
}

#[tokio::test]
async fn me_for_a_deleted_account_is_404() {
    let (_fake, app, token, id) = logged_in().await;
    // Deleting the row while the token version is cached: the profile itself is gone.
    let _ = app.get("/users/me/", Some(&token)).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM users WHERE id = {id}"
    )))
    .execute(app.users.db().pool())
    .await
    .unwrap();
    let answer = app.get("/users/me/", Some(&token)).await;
    assert_eq!(answer.status, 404);
    assert_eq!(
        answer.body,
        json!({"detail": "Not found.", "code": "not_found"})
    );
}
