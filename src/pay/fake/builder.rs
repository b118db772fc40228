//! Configuring and starting a [`FakeWeChatPay`], and the keys it signs and verifies with.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::sync::oneshot;

use super::{Counters, FakeState, FakeWeChatPay, Shared, api};
use crate::pay::sign;

/// Configures a [`FakeWeChatPay`] before starting it.
#[derive(Clone)]
#[must_use]
pub struct FakeWeChatPayBuilder {
    mchid: String,
    appid: String,
    apiv3_key: String,
    merchant_serial: String,
    public_key_id: String,
    merchant_key_pem: Option<String>,
    platform_key_pem: Option<String>,
    dev_mode: bool,
    max_orders: usize,
    notify_attempts: u32,
    notify_retry_delay: Duration,
    notify_delay: Duration,
    refund_delay: Duration,
    bind: SocketAddr,
}

impl fmt::Debug for FakeWeChatPayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeWeChatPayBuilder")
            .field("mchid", &self.mchid)
            .field("appid", &self.appid)
            .field("dev_mode", &self.dev_mode)
            .finish_non_exhaustive()
    }
}

impl Default for FakeWeChatPayBuilder {
    fn default() -> Self {
        Self {
            mchid: "1900000109".to_owned(),
            appid: "wxfake00000000000".to_owned(),
            apiv3_key: uuid::Uuid::new_v4().simple().to_string(),
            merchant_serial: "FAKE0000000000000000000000000000000MCH01".to_owned(),
            public_key_id: "PUB_KEY_ID_0000000000000000000000000000FAKE".to_owned(),
            merchant_key_pem: None,
            platform_key_pem: None,
            dev_mode: false,
            max_orders: 10_000,
            notify_attempts: 5,
            notify_retry_delay: Duration::from_millis(100),
            notify_delay: Duration::ZERO,
            refund_delay: Duration::from_millis(50),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }
}

impl FakeWeChatPayBuilder {
    /// The merchant id the fake serves.
    pub fn mchid(mut self, mchid: impl Into<String>) -> Self {
        self.mchid = mchid.into();
        self
    }

    /// The appid orders must be for.
    pub fn appid(mut self, appid: impl Into<String>) -> Self {
        self.appid = appid.into();
        self
    }

    /// The APIv3 key notifications are encrypted with (32 bytes; random by default).
    pub fn apiv3_key(mut self, key: impl Into<String>) -> Self {
        self.apiv3_key = key.into();
        self
    }

    /// The merchant key (PEM, PKCS#8 or PKCS#1) the fake expects requests to be signed with.
    /// By default a fixed 2048-bit development key embedded in this crate (public, so
    /// only ever for the fake).
    pub fn merchant_key_pem(mut self, pem: impl Into<String>) -> Self {
        self.merchant_key_pem = Some(pem.into());
        self
    }

    /// The platform key (PEM, PKCS#8 or PKCS#1) the fake signs answers and notifications
    /// with. By default a fixed 2048-bit development key embedded in this crate.
    pub fn platform_key_pem(mut self, pem: impl Into<String>) -> Self {
        self.platform_key_pem = Some(pem.into());
        self
    }

    /// Dev mode: `POST {base_url}/fake/pay/{out_trade_no}` pays an order, as a buyer would,
    /// so a developer can finish a payment with `curl`; `POST {base_url}/fake/request-payment`
    /// with the `wx.requestPayment` parameters as JSON does what `wx.requestPayment` does
    /// (checks the appid and `paySign`, then pays the order of the prepay_id), for a
    /// mini-program stand-in.
    pub fn dev_mode(mut self, on: bool) -> Self {
        self.dev_mode = on;
        self
    }

    /// How many orders (and, separately, refunds) the fake keeps; beyond, new ones are
    /// answered 429 `FREQUENCY_LIMITED` (default 10 000).
    pub fn max_orders(mut self, max: usize) -> Self {
        self.max_orders = max;
        self
    }

    /// How many times a notification is sent while the answer is not 2xx, and the pause
    /// between attempts (default 5 attempts, 100 ms apart).
    pub fn notify_retries(mut self, attempts: u32, delay: Duration) -> Self {
        self.notify_attempts = attempts.max(1);
        self.notify_retry_delay = delay;
        self
    }

    /// How long after a payment its first notification is sent (default none): a merchant
    /// that hears late, as it does when WeChat Pay is slow, still has to answer a buyer
    /// polling the order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// use wxrest::pay::FakeWeChatPay;
    ///
    /// let fake = FakeWeChatPay::builder().notify_delay(Duration::from_millis(500)).start().await;
    /// # drop(fake); }
    /// ```
    pub fn notify_delay(mut self, delay: Duration) -> Self {
        self.notify_delay = delay;
        self
    }

    /// The address to serve on (default `127.0.0.1:0`, a free port): a fixed one lets a
    /// process outside the test (a mini-program stand-in) reach the fake's development routes.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
    /// use wxrest::pay::FakeWeChatPay;
    ///
    /// let fake = FakeWeChatPay::builder().bind(([127, 0, 0, 1], 0).into()).try_start().await?;
    /// assert!(fake.base_url().starts_with("http://127.0.0.1:"));
    /// # Ok(()) }
    /// ```
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// How long a refund stays `PROCESSING` before it succeeds (default 50 ms).
    pub fn refund_delay(mut self, delay: Duration) -> Self {
        self.refund_delay = delay;
        self
    }

    /// Binds `127.0.0.1:0` (or [`bind`](Self::bind)'s address) and serves until the fake is
    /// dropped or shut down.
    ///
    /// # Panics
    /// If a given key PEM is not an RSA private key, the APIv3 key is not 32 bytes, or the
    /// address cannot be bound (a broken test set-up; [`try_start`](Self::try_start) returns
    /// that error instead).
    pub async fn start(self) -> FakeWeChatPay {
        let bind = self.bind;
        match self.try_start().await {
            Ok(fake) => fake,
            Err(err) => panic!("FakeWeChatPay: cannot bind {bind}: {err}"),
        }
    }

    /// [`start`](Self::start), answering an address that cannot be bound (in use, not local)
    /// with its error.
    ///
    /// # Errors
    /// The error of binding the address.
    ///
    /// # Panics
    /// If a given key PEM is not an RSA private key or the APIv3 key is not 32 bytes.
    pub async fn try_start(self) -> std::io::Result<FakeWeChatPay> {
        let merchant_key_pem = self
            .merchant_key_pem
            .unwrap_or_else(|| DEV_MERCHANT_KEY_PEM.to_owned());
        let merchant = parse_key(&merchant_key_pem);
        let platform = parse_key(
            self.platform_key_pem
                .as_deref()
                .unwrap_or(DEV_PLATFORM_KEY_PEM),
        );
        let platform_public = sign::public_key_of(&platform);
        let platform_public_pem =
            ::pem::encode(&::pem::Pem::new("RSA PUBLIC KEY", platform_public.as_ref()));
        assert_eq!(
            self.apiv3_key.len(),
            32,
            "FakeWeChatPay: the APIv3 key must be 32 bytes"
        );
        let mut apiv3_key = [0u8; 32];
        apiv3_key.copy_from_slice(self.apiv3_key.as_bytes());
        let listener = tokio::net::TcpListener::bind(self.bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            mchid: self.mchid,
            appid: self.appid,
            apiv3_key,
            merchant_serial: self.merchant_serial,
            public_key_id: self.public_key_id,
            merchant_public: sign::public_key_of(&merchant),
            merchant_key_pem,
            platform_public_pem,
            platform_signing: platform,
            base_url: format!("http://{addr}"),
            dev_mode: self.dev_mode,
            max_orders: self.max_orders,
            notify_attempts: self.notify_attempts,
            notify_retry_delay: self.notify_retry_delay,
            notify_delay: self.notify_delay,
            refund_delay: self.refund_delay,
            #[allow(clippy::expect_used)]
            http: crate::upstream::http_client_builder()
                .expect("FakeWeChatPay: cannot set up TLS")
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
            state: Mutex::new(FakeState::default()),
            tasks: Mutex::new(Vec::new()),
            counters: Counters::default(),
        });
        let router = Router::new()
            .fallback(api::dispatch)
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let server = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = rx.await;
            });
            if let Err(err) = server.await {
                tracing::warn!(error = %err, "FakeWeChatPay server stopped");
            }
        });
        Ok(FakeWeChatPay {
            shared,
            addr,
            shutdown: Some(tx),
            task: Some(task),
            _registration: crate::dev::FakeRegistration::new("FakeWeChatPay"),
        })
    }
}

/// The fake's default merchant private key: a fixed 2048-bit **development key**, public in
/// this crate's source. It only ever signs requests to a [`FakeWeChatPay`](super::FakeWeChatPay);
/// never configure it for a real merchant.
const DEV_MERCHANT_KEY_PEM: &str = include_str!("dev_keys/merchant.pem");

/// The fake's default platform (WeChat Pay) private key: a fixed 2048-bit **development key**,
/// public in this crate's source, that signs the fake's answers and notifications. A client
/// configured to trust it trusts anyone: only [`FakeWeChatPay::config`](super::FakeWeChatPay::config)
/// should use its public half.
const DEV_PLATFORM_KEY_PEM: &str = include_str!("dev_keys/platform.pem");

fn parse_key(pem: &str) -> sign::SigningKey {
    #[allow(clippy::expect_used)]
    crate::pay::config::parse_private_key(pem)
        .expect("FakeWeChatPay: the key is not a PEM RSA private key of 2048 to 4096 bits")
}
