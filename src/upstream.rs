//! What the WeChat and WeChat Pay clients share about the HTTP API they call: the connection
//! settings of their configs (written once, by [`upstream_settings!`]) and how a transport
//! error is described without leaking its URL.

/// The builder methods of a config holding an upstream API's connection settings in the
/// fields `api_base: String`, `connect_timeout: Duration`, `timeout: Duration` and
/// `max_retries: u32`.
macro_rules! upstream_settings {
    ($what:literal) => {
        #[doc = concat!("Sets the API base URL (e.g. a ", $what, "'s or a proxy's).")]
        #[must_use]
        pub fn api_base(mut self, base: impl Into<String>) -> Self {
            self.api_base = base.into().trim_end_matches('/').to_owned();
            self
        }

        /// Sets the connect timeout.
        #[must_use]
        pub fn connect_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.connect_timeout = timeout;
            self
        }

        /// Sets the overall deadline of one API call, retries included.
        #[must_use]
        pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
            self.timeout = timeout;
            self
        }

        /// Sets how many times a failed call may be retried where that is safe (see the
        /// client's docs).
        #[must_use]
        pub fn max_retries(mut self, retries: u32) -> Self {
            self.max_retries = retries;
            self
        }
    };
}
pub(crate) use upstream_settings;

/// A reqwest error and its causes as one line, without the URL (it may hold `secret=` or
/// `access_token=`).
pub(crate) fn describe(err: reqwest::Error) -> String {
    let err = err.without_url();
    let mut text = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A reqwest client builder on the TLS backend the features chose: rustls on ring (with the
/// platform's certificate verifier) when `rustls` is on, else the system's native TLS.
///
/// The rustls configuration is handed to reqwest ready-made, so no process-wide crypto
/// provider is installed or needed: an application keeps whichever default it sets.
pub(crate) fn http_client_builder() -> Result<reqwest::ClientBuilder, String> {
    let builder = reqwest::Client::builder();
    #[cfg(feature = "rustls")]
    let builder = builder.tls_backend_preconfigured(rustls_config()?);
    Ok(builder)
}

#[cfg(feature = "rustls")]
fn rustls_config() -> Result<rustls::ClientConfig, String> {
    use std::sync::Arc;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())
        .map_err(|e| format!("cannot load the platform's TLS roots: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
