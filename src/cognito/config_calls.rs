//! A pool's configuration in the API's own JSON: the describe, list and get answers are kept as
//! the JSON Cognito sends (every field, in the API's shapes and names, including fields this
//! SDK version does not know), and the create and set requests are sent with a JSON body built
//! from them. The SDK's typed builders still send each request (signing, retries, endpoint);
//! only the body is ours.

use super::{CallError, Category, Cognito, for_each_page};
use aws_sdk_cognitoidentityprovider::config::http::{HttpRequest, HttpResponse};
use aws_sdk_cognitoidentityprovider::config::interceptors::AfterDeserializationInterceptorContextRef;
use aws_sdk_cognitoidentityprovider::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_cognitoidentityprovider::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cognitoidentityprovider::types::IdentityProviderTypeType;
use aws_smithy_types::body::SdkBody;
use serde_json::Value;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Attempts for the optional parts (UI customization, risk configuration, log delivery, terms):
/// an endpoint that does not implement them answers HTTP 500, which is not worth 8 attempts.
const OPTIONAL_ATTEMPTS: u32 = 3;

/// Keeps the JSON body of the last response an operation deserialized.
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

impl Intercept for Capture {
    fn name(&self) -> &'static str {
        "cbr::CaptureJson"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let bytes = context.response().body().bytes().map(<[u8]>::to_vec);
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = bytes;
        Ok(())
    }
}

impl Capture {
    fn json(&self, op: &str) -> Result<Value, CallError> {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        let parsed = bytes.as_deref().map(serde_json::from_slice::<Value>);
        match parsed {
            Some(Ok(value)) => Ok(value),
            _ => Err(CallError {
                code: None,
                message: format!("{op}: the answer is not a JSON object"),
                retryable: false,
            }),
        }
    }
}

/// Replaces a request's body with `body` (before it is signed).
fn with_body(body: &Value) -> impl Fn(&mut HttpRequest) + Send + Sync + 'static {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    move |req: &mut HttpRequest| {
        req.headers_mut()
            .insert("content-length", bytes.len().to_string());
        *req.body_mut() = SdkBody::from(bytes.clone());
    }
}

/// `value[key]`, or `Value::Null`, taken out of an answer.
fn field(mut value: Value, key: &str) -> Value {
    value.get_mut(key).map(Value::take).unwrap_or(Value::Null)
}

/// A listing answer's `NextToken`.
fn next_token(page: &Value) -> Option<String> {
    page["NextToken"].as_str().map(str::to_string)
}

fn strings(value: &Value, list: &str, key: &str) -> Vec<String> {
    value[list]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i[key].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Cognito {
    /// Sends one request and returns its answer as JSON.
    async fn json<T, E, F, Fut>(
        &self,
        category: Category,
        op: &str,
        mut send: F,
    ) -> Result<Value, CallError>
    where
        F: FnMut(Capture) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let capture = Capture::default();
        self.call(category, || send(capture.clone())).await?;
        capture.json(op)
    }

    /// DescribeUserPool's `UserPool`, as Cognito sends it.
    pub async fn describe_pool_json(&self, pool_id: &str) -> Result<Value, CallError> {
        let out = self
            .json(Category::UserPoolRead, "DescribeUserPool", |c| {
                self.client
                    .describe_user_pool()
                    .user_pool_id(pool_id)
                    .customize()
                    .interceptor(c)
                    .send()
            })
            .await?;
        Ok(field(out, "UserPool"))
    }

    /// GetUserPoolMfaConfig's answer.
    pub async fn mfa_config_json(&self, pool_id: &str) -> Result<Value, CallError> {
        self.json(Category::UserPoolRead, "GetUserPoolMfaConfig", |c| {
            self.client
                .get_user_pool_mfa_config()
                .user_pool_id(pool_id)
                .customize()
                .interceptor(c)
                .send()
        })
        .await
    }

    /// Every app client's `UserPoolClient` (DescribeUserPoolClient: the secret included), in
    /// ListUserPoolClients order.
    pub async fn clients_json(&self, pool_id: &str) -> Result<Vec<Value>, CallError> {
        let mut ids = Vec::new();
        for_each_page(
            |token| async move {
                self.json(Category::UserPoolResourceRead, "ListUserPoolClients", |c| {
                    self.client
                        .list_user_pool_clients()
                        .user_pool_id(pool_id)
                        .max_results(60)
                        .set_next_token(token.clone())
                        .customize()
                        .interceptor(c)
                        .send()
                })
                .await
            },
            |page| {
                ids.extend(strings(&page, "UserPoolClients", "ClientId"));
                Ok(next_token(&page))
            },
        )
        .await?;
        let mut clients = Vec::with_capacity(ids.len());
        for id in ids {
            let out = self
                .json(
                    Category::UserPoolResourceRead,
                    "DescribeUserPoolClient",
                    |c| {
                        self.client
                            .describe_user_pool_client()
                            .user_pool_id(pool_id)
                            .client_id(&id)
                            .customize()
                            .interceptor(c)
                            .send()
                    },
                )
                .await?;
            clients.push(field(out, "UserPoolClient"));
        }
        Ok(clients)
    }

    /// Every identity provider's `IdentityProvider` (DescribeIdentityProvider: its details,
    /// client secrets included).
    pub async fn providers_json(&self, pool_id: &str) -> Result<Vec<Value>, CallError> {
        let mut names = Vec::new();
        for_each_page(
            |token| async move {
                self.json(
                    Category::UserPoolResourceRead,
                    "ListIdentityProviders",
                    |c| {
                        self.client
                            .list_identity_providers()
                            .user_pool_id(pool_id)
                            .max_results(60)
                            .set_next_token(token.clone())
                            .customize()
                            .interceptor(c)
                            .send()
                    },
                )
                .await
            },
            |page| {
                names.extend(strings(&page, "Providers", "ProviderName"));
                Ok(next_token(&page))
            },
        )
        .await?;
        let mut providers = Vec::with_capacity(names.len());
        for name in names {
            let out = self
                .json(
                    Category::UserPoolResourceRead,
                    "DescribeIdentityProvider",
                    |c| {
                        self.client
                            .describe_identity_provider()
                            .user_pool_id(pool_id)
                            .provider_name(&name)
                            .customize()
                            .interceptor(c)
                            .send()
                    },
                )
                .await?;
            providers.push(field(out, "IdentityProvider"));
        }
        Ok(providers)
    }

    /// Every resource server with its scopes (ListResourceServers).
    pub async fn resource_servers_json(&self, pool_id: &str) -> Result<Vec<Value>, CallError> {
        let mut servers = Vec::new();
        for_each_page(
            |token| async move {
                self.json(Category::UserPoolResourceRead, "ListResourceServers", |c| {
                    self.client
                        .list_resource_servers()
                        .user_pool_id(pool_id)
                        .max_results(50)
                        .set_next_token(token.clone())
                        .customize()
                        .interceptor(c)
                        .send()
                })
                .await
            },
            |page| {
                let next = next_token(&page);
                if let Value::Array(items) = field(page, "ResourceServers") {
                    servers.extend(items);
                }
                Ok(next)
            },
        )
        .await?;
        Ok(servers)
    }

    /// DescribeUserPoolDomain's `DomainDescription`; `None` when no pool of the account has
    /// this domain.
    pub async fn describe_domain_json(&self, domain: &str) -> Result<Option<Value>, CallError> {
        let out = self
            .json(Category::UserPoolRead, "DescribeUserPoolDomain", |c| {
                self.client
                    .describe_user_pool_domain()
                    .domain(domain)
                    .customize()
                    .interceptor(c)
                    .send()
            })
            .await?;
        let description = field(out, "DomainDescription");
        Ok(description["UserPoolId"].is_string().then_some(description))
    }

    /// The parts an endpoint may not offer, by operation name, each read with a few attempts.
    /// Returns `(operation, answer or error)` for each.
    pub async fn optional_parts_json(
        &self,
        pool_id: &str,
    ) -> Vec<(&'static str, Result<Value, CallError>)> {
        let few = Cognito {
            max_attempts: self.max_attempts.min(OPTIONAL_ATTEMPTS),
            ..self.clone()
        };
        let cat = Category::UserPoolResourceRead;
        let client = &self.client;
        // Read at the same time: each may take a few attempts on an endpoint without it.
        let (a, b, c, d) = tokio::join!(
            few.json(cat, "GetUICustomization", |c| {
                client
                    .get_ui_customization()
                    .user_pool_id(pool_id)
                    .customize()
                    .interceptor(c)
                    .send()
            }),
            few.json(cat, "DescribeRiskConfiguration", |c| {
                client
                    .describe_risk_configuration()
                    .user_pool_id(pool_id)
                    .customize()
                    .interceptor(c)
                    .send()
            }),
            few.json(cat, "GetLogDeliveryConfiguration", |c| {
                client
                    .get_log_delivery_configuration()
                    .user_pool_id(pool_id)
                    .customize()
                    .interceptor(c)
                    .send()
            }),
            few.json(cat, "ListTerms", |c| {
                client
                    .list_terms()
                    .user_pool_id(pool_id)
                    .customize()
                    .interceptor(c)
                    .send()
            }),
        );
        vec![
            ("GetUICustomization", a),
            ("DescribeRiskConfiguration", b),
            ("GetLogDeliveryConfiguration", c),
            ("ListTerms", d),
        ]
    }

    /// CreateUserPool with this request body; returns the new `UserPool`.
    pub async fn create_pool_json(&self, body: &Value) -> Result<Value, CallError> {
        let out = self
            .json(Category::UserPoolResourceUpdate, "CreateUserPool", |c| {
                self.client
                    .create_user_pool()
                    .pool_name("-")
                    .customize()
                    .interceptor(c)
                    .mutate_request(with_body(body))
                    .send()
            })
            .await?;
        Ok(field(out, "UserPool"))
    }

    /// CreateIdentityProvider with this request body.
    pub async fn create_provider_json(&self, body: &Value) -> Result<(), CallError> {
        self.json(
            Category::UserPoolResourceUpdate,
            "CreateIdentityProvider",
            |c| {
                self.client
                    .create_identity_provider()
                    .user_pool_id("-")
                    .provider_name("-")
                    .provider_type(IdentityProviderTypeType::Oidc)
                    .provider_details("-", "-")
                    .customize()
                    .interceptor(c)
                    .mutate_request(with_body(body))
                    .send()
            },
        )
        .await
        .map(drop)
    }

    /// CreateResourceServer with this request body.
    pub async fn create_resource_server_json(&self, body: &Value) -> Result<(), CallError> {
        self.json(
            Category::UserPoolResourceUpdate,
            "CreateResourceServer",
            |c| {
                self.client
                    .create_resource_server()
                    .user_pool_id("-")
                    .identifier("-")
                    .name("-")
                    .customize()
                    .interceptor(c)
                    .mutate_request(with_body(body))
                    .send()
            },
        )
        .await
        .map(drop)
    }

    /// CreateUserPoolClient with this request body; returns the new `UserPoolClient`.
    pub async fn create_client_json(&self, body: &Value) -> Result<Value, CallError> {
        let out = self
            .json(
                Category::UserPoolResourceUpdate,
                "CreateUserPoolClient",
                |c| {
                    self.client
                        .create_user_pool_client()
                        .user_pool_id("-")
                        .client_name("-")
                        .customize()
                        .interceptor(c)
                        .mutate_request(with_body(body))
                        .send()
                },
            )
            .await?;
        Ok(field(out, "UserPoolClient"))
    }

    /// CreateUserPoolDomain with this request body.
    pub async fn create_domain_json(&self, body: &Value) -> Result<(), CallError> {
        self.json(
            Category::UserPoolResourceUpdate,
            "CreateUserPoolDomain",
            |c| {
                self.client
                    .create_user_pool_domain()
                    .user_pool_id("-")
                    .domain("-")
                    .customize()
                    .interceptor(c)
                    .mutate_request(with_body(body))
                    .send()
            },
        )
        .await
        .map(drop)
    }

    /// SetUserPoolMfaConfig with this request body.
    pub async fn set_mfa_config_json(&self, body: &Value) -> Result<(), CallError> {
        self.json(
            Category::UserPoolResourceUpdate,
            "SetUserPoolMfaConfig",
            |c| {
                self.client
                    .set_user_pool_mfa_config()
                    .user_pool_id("-")
                    .customize()
                    .interceptor(c)
                    .mutate_request(with_body(body))
                    .send()
            },
        )
        .await
        .map(drop)
    }
}
