//! The billing lifecycle end to end against a Stripe-compatible server (localstripe) with
//! real, signed webhooks: trial → active → upgrade → failed payment → grace → suspended →
//! recovered → cancelled, plus the webhook endpoint's refusals, deduplication and order.
//!
//! What the test does in Stripe's place is done through localstripe's own API: the owner's
//! card entry in Stripe.js (confirming the SetupIntent Tenantry made), the invoice Stripe
//! issues when a trial ends, and a debit that bounces. A bounced SEPA debit makes localstripe
//! end the subscription it was for, so the bouncing invoice is for a second subscription of
//! the same customer (an add-on, say): Tenantry hears `invoice.payment_failed` for its
//! customer and `customer.subscription.deleted` for a subscription that is not its own.

#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use infra::testing::{LOCALSTRIPE_KEY, LocalStripe};
use serde_json::{Value, json};
use std::time::Duration;
use support::eventually;
use support::graphql::{Backend, OPERATOR, code, events, platform};

const PUBLISH: &str = "mutation($i: PlanInput!) { publishPlan(input: $i) { position } }";
const STATE: &str = "query($t: ID!) { tenant(id: $t) { status plan subscription { plan status trialEndsAt currentPeriodEnd cancelAt } } }";
const SECRET: &str = "whsec_tenantry_test";

struct Stripe {
    server: LocalStripe,
    client: reqwest::Client,
}

impl Stripe {
    async fn call(&self, method: reqwest::Method, path: &str, form: &[(&str, &str)]) -> Value {
        let response = self
            .client
            .request(method, format!("{}/v1/{path}", self.server.url()))
            .bearer_auth(LOCALSTRIPE_KEY)
            .form(form)
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, &[]).await
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Value {
        let answer = self.call(reqwest::Method::POST, path, form).await;
        assert!(answer.get("error").is_none(), "POST {path}: {answer}");
        answer
    }

    /// A payment method, attached to `customer` as its default.
    async fn default_method(&self, customer: &str, form: &[(&str, &str)]) -> String {
        let method = self.post("payment_methods", form).await;
        let id = method["id"].as_str().unwrap().to_owned();
        self.post(
            &format!("payment_methods/{id}/attach"),
            &[("customer", customer)],
        )
        .await;
        self.post(
            &format!("customers/{customer}"),
            &[("invoice_settings[default_payment_method]", id.as_str())],
        )
        .await;
        id
    }

    /// Issues and collects an invoice, as Stripe does at a period's (or trial's) end.
    async fn invoice(&self, customer: &str, subscription: &str) -> String {
        let invoice = self
            .post(
                "invoices",
                &[("customer", customer), ("subscription", subscription)],
            )
            .await;
        let id = invoice["id"].as_str().unwrap().to_owned();
        self.post(&format!("invoices/{id}/pay"), &[]).await;
        id
    }
}

const GOOD_CARD: &[(&str, &str)] = &[
    ("type", "card"),
    ("card[number]", "4242424242424242"),
    ("card[exp_month]", "12"),
    ("card[exp_year]", "2030"),
    ("card[cvc]", "123"),
];

#[tokio::test]
async fn a_subscription_lives_its_whole_life_in_step_with_stripe() {
    let stripe = Stripe {
        server: LocalStripe::start().await,
        client: reqwest::Client::new(),
    };
    let base = stripe.server.url();
    let p = platform(
        Backend::Sqlite,
        &[
            "--stripe-api-key",
            LOCALSTRIPE_KEY,
            "--stripe-api-base",
            &base,
            // The old secret first: every configured secret is tried (rotation).
            "--stripe-webhook-secrets",
            &format!("whsec_retired,{SECRET}"),
            "--payment-grace-seconds",
            "2",
            "--renewal-check-seconds",
            "1",
        ],
    )
    .await;
    let hook = reqwest::Client::new()
        .post(format!("{base}/_config/webhooks/tenantry"))
        .form(&[
            ("url", format!("{}/webhooks/stripe", p.api.base)),
            ("secret", SECRET.to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert!(hook.status().is_success());

    let op = p.person(OPERATOR).await;
    for (key, amount) in [("pro", 2_900), ("business", 9_900)] {
        let plan = json!({
            "key": key, "name": key.to_uppercase(), "trialDays": 14,
            "prices": [{"interval": "MONTH", "amount": amount, "currency": "eur"}],
        });
        p.api.ok(Some(&op.token), PUBLISH, json!({"i": plan})).await;
    }
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;
    let state = async || -> Value {
        p.api
            .ok(Some(&ada.token), STATE, json!({"t": tenant}))
            .await["tenant"]
            .clone()
    };

    // Trial: Tenantry creates the customer and a Stripe subscription with the trial's end.
    let subscribed = p
        .api
        .ok(
            Some(&ada.token),
            "mutation($t: ID!) { subscribe(tenantId: $t, plan: \"pro\") { subscription { status trialEndsAt } } }",
            json!({"t": tenant}),
        )
        .await;
    assert_eq!(
        subscribed["subscribe"]["subscription"]["status"],
        "TRIALING"
    );
    let (customer, subscription) = eventually(
        "the Stripe subscription",
        Duration::from_secs(20),
        || async {
            let customers = stripe.get("customers?limit=100").await;
            let customer = customers["data"]
                .as_array()?
                .iter()
                .find(|c| c["metadata"]["tenant_id"] == tenant.as_str())?["id"]
                .as_str()?
                .to_owned();
            let subs = stripe
                .get(&format!("subscriptions?customer={customer}"))
                .await;
            let sub = subs["data"].as_array()?.first()?.clone();
            Some((customer, sub))
        },
    )
    .await;
    assert_eq!(subscription["plan"]["id"], "tenantry_pro_v1_month_eur");
    assert_eq!(subscription["metadata"]["tenant_id"], tenant.as_str());
    let trial_end = chrono::DateTime::parse_from_rfc3339(
        subscribed["subscribe"]["subscription"]["trialEndsAt"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(subscription["trial_end"], trial_end.timestamp());
    let subscription = subscription["id"].as_str().unwrap().to_owned();

    // The owner adds a card: Tenantry makes the SetupIntent, Stripe.js confirms it.
    let setup = p
        .api
        .ok(
            Some(&ada.token),
            "mutation($t: ID!) { setUpPaymentMethod(tenantId: $t) { clientSecret } }",
            json!({"t": tenant}),
        )
        .await;
    let secret = setup["setUpPaymentMethod"]["clientSecret"]
        .as_str()
        .unwrap();
    let intent = secret.split("_secret_").next().unwrap();
    assert!(intent.starts_with("seti_"), "{secret}");
    let card = stripe.default_method(&customer, GOOD_CARD).await;
    let confirmed = stripe
        .post(
            &format!("setup_intents/{intent}/confirm"),
            &[("payment_method", card.as_str())],
        )
        .await;
    assert_eq!(confirmed["status"], "succeeded");

    // The trial ends at Stripe and the first month is paid: active.
    stripe.invoice(&customer, &subscription).await;
    eventually("active", Duration::from_secs(20), || async {
        let s = state().await;
        (s["subscription"]["status"] == "ACTIVE").then_some(())
    })
    .await;
    assert_eq!(state().await["subscription"]["trialEndsAt"], Value::Null);

    // Upgrade: at once here, pushed to Stripe.
    p.api
        .ok(
            Some(&ada.token),
            "mutation($t: ID!) { changePlan(tenantId: $t, plan: \"business\") { subscription { plan } } }",
            json!({"t": tenant}),
        )
        .await;
    eventually("the upgrade at Stripe", Duration::from_secs(20), || async {
        let sub = stripe.get(&format!("subscriptions/{subscription}")).await;
        (sub["plan"]["id"] == "tenantry_business_v1_month_eur").then_some(())
    })
    .await;

    // A debit bounces: past due, then suspended when the grace period (2 s) is over.
    let addon = stripe
        .post(
            "subscriptions",
            &[
                ("customer", customer.as_str()),
                ("items[0][plan]", "tenantry_pro_v1_month_eur"),
            ],
        )
        .await;
    let addon = addon["id"].as_str().unwrap().to_owned();
    stripe
        .default_method(
            &customer,
            &[
                ("type", "sepa_debit"),
                ("sepa_debit[iban]", "DE62370400440532013001"),
            ],
        )
        .await;
    let bounced = stripe.invoice(&customer, &addon).await;
    eventually("past due", Duration::from_secs(20), || async {
        let s = state().await;
        matches!(
            s["subscription"]["status"].as_str(),
            Some("PAST_DUE" | "SUSPENDED")
        )
        .then_some(())
    })
    .await;
    eventually("suspended", Duration::from_secs(20), || async {
        let s = state().await;
        (s["subscription"]["status"] == "SUSPENDED" && s["status"] == "SUSPENDED").then_some(())
    })
    .await;

    // The invoice is paid with a card: recovered, and the tenant is active again.
    stripe.default_method(&customer, GOOD_CARD).await;
    stripe.post(&format!("invoices/{bounced}/pay"), &[]).await;
    eventually("recovered", Duration::from_secs(20), || async {
        let s = state().await;
        (s["subscription"]["status"] == "ACTIVE" && s["status"] == "ACTIVE").then_some(())
    })
    .await;
    assert_eq!(state().await["subscription"]["plan"], "business");

    // Cancelled at once: Stripe's subscription ends too.
    p.api
        .ok(
            Some(&ada.token),
            "mutation($t: ID!) { cancelSubscription(tenantId: $t, atPeriodEnd: false) { subscription { status } } }",
            json!({"t": tenant}),
        )
        .await;
    eventually("cancelled at Stripe", Duration::from_secs(20), || async {
        let sub = stripe.get(&format!("subscriptions/{subscription}")).await;
        (sub["status"] == "canceled").then_some(())
    })
    .await;
    assert_eq!(state().await["subscription"]["status"], "CANCELLED");
    assert_eq!(state().await["status"], "ACTIVE");
}

/// Signs `payload` as Stripe does.
fn signed(secret: &str, timestamp: i64, payload: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{payload}").as_bytes());
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={signature}")
}

#[tokio::test]
async fn the_webhook_endpoint_checks_signatures_takes_each_event_once_and_keeps_order() {
    let stripe = LocalStripe::start().await;
    let p = platform(
        Backend::Sqlite,
        &[
            "--stripe-api-key",
            LOCALSTRIPE_KEY,
            "--stripe-api-base",
            &stripe.url(),
            "--stripe-webhook-secrets",
            SECRET,
        ],
    )
    .await;
    let ada = p.person("ada@example.com").await;
    let tenant = p.tenant(&ada, "acme").await;
    let op = p.person(OPERATOR).await;
    let plan = json!({
        "key": "pro", "name": "Pro", "trialDays": 0,
        "prices": [{"interval": "MONTH", "amount": 2900, "currency": "eur"}],
    });
    p.api.ok(Some(&op.token), PUBLISH, json!({"i": plan})).await;
    p.api
        .ok(
            Some(&ada.token),
            "mutation($t: ID!) { subscribe(tenantId: $t, plan: \"pro\") { position } }",
            json!({"t": tenant}),
        )
        .await;
    // The billing read model follows the log: Stripe reads nothing back, so neither does
    // this test; it waits (bounded) for the status a webhook leads to.
    let status = async |expected: &str| {
        eventually(expected, Duration::from_secs(20), || async {
            let now = p
                .api
                .ok(Some(&ada.token), STATE, json!({"t": tenant}))
                .await["tenant"]["subscription"]["status"]
                .clone();
            (now == expected).then_some(())
        })
        .await
    };
    let url = format!("{}/webhooks/stripe", p.api.base);
    let post = async |payload: &str, signature: Option<String>| -> (u16, Value) {
        let mut request = reqwest::Client::new().post(&url).body(payload.to_owned());
        if let Some(signature) = signature {
            request = request.header("Stripe-Signature", signature);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    };
    let now = chrono::Utc::now().timestamp();
    let event = |id: &str, kind: &str, created: i64| {
        json!({
            "id": id, "object": "event", "type": kind, "created": created,
            "data": {"object": {"id": "in_1", "object": "invoice", "amount_paid": 2900,
                                "metadata": {"tenant_id": tenant}}},
        })
        .to_string()
    };

    // What webhooks write (the reactors write on their own schedule beside them).
    let written = async || {
        events(&p.database_url)
            .await
            .into_iter()
            .filter(|(kind, _, _)| {
                matches!(
                    kind.as_str(),
                    "NoticeReceived" | "PaymentFailed" | "PaymentRecovered" | "TrialEnded"
                )
            })
            .count()
    };

    // Refused, writing nothing: no signature, a wrong one, a stale one, a changed body.
    let failed = event("evt_failed", "invoice.payment_failed", now - 60);
    let before = written().await;
    assert_eq!(post(&failed, None).await.0, 400);
    assert_eq!(
        post(&failed, Some(signed("whsec_other", now, &failed)))
            .await
            .0,
        400
    );
    let stale = post(&failed, Some(signed(SECRET, now - 3600, &failed))).await;
    assert_eq!(stale.0, 400);
    assert!(stale.1["error"].as_str().unwrap().contains("tolerance"));
    let tampered = failed.replace("2900", "2901");
    assert_eq!(
        post(&tampered, Some(signed(SECRET, now, &failed))).await.0,
        400
    );
    assert_eq!(
        post("not json", Some(signed(SECRET, now, "not json")))
            .await
            .0,
        400
    );
    assert_eq!(written().await, before, "refusals write nothing");
    status("ACTIVE").await;

    // Taken once: a redelivery is acknowledged and changes nothing.
    let (code_, body) = post(&failed, Some(signed(SECRET, now, &failed))).await;
    assert_eq!((code_, body["outcome"].clone()), (200, json!("applied")));
    let taken = written().await;
    assert_eq!(taken, before + 2, "the notice and the failure");
    let again = post(&failed, Some(signed(SECRET, now, &failed))).await;
    assert_eq!((again.0, again.1["duplicate"].clone()), (200, json!(true)));
    assert_eq!(written().await, taken);
    status("PAST_DUE").await;

    // Out of order: the payment of a minute ago recovers it; an older failure does not undo it.
    let paid = event("evt_paid", "invoice.payment_succeeded", now - 30);
    assert_eq!(post(&paid, Some(signed(SECRET, now, &paid))).await.0, 200);
    let older = event("evt_older", "invoice.payment_failed", now - 45);
    let (code_, body) = post(&older, Some(signed(SECRET, now, &older))).await;
    assert_eq!((code_, body["outcome"].clone()), (200, json!("unchanged")));
    status("ACTIVE").await;

    // Types Tenantry does not act on are acknowledged and recorded.
    let other = event("evt_other", "charge.dispute.created", now);
    let (code_, body) = post(&other, Some(signed(SECRET, now, &other))).await;
    assert_eq!((code_, body["outcome"].clone()), (200, json!("unhandled")));
    // Recorded: the payment and its notice, the older failure's notice, this one's.
    assert_eq!(written().await, taken + 4);

    // Not configured: the endpoint is not there.
    let local = platform(Backend::Sqlite, &[]).await;
    let response = reqwest::Client::new()
        .post(format!("{}/webhooks/stripe", local.api.base))
        .body(failed.clone())
        .header("Stripe-Signature", signed(SECRET, now, &failed))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    // Setting up a payment method needs Stripe.
    let bob = local.person("bob@example.com").await;
    let bobs = local.tenant(&bob, "bobs").await;
    let refused = local
        .api
        .gql(
            Some(&bob.token),
            "mutation($t: ID!) { setUpPaymentMethod(tenantId: $t) { clientSecret } }",
            json!({"t": bobs}),
        )
        .await;
    assert_eq!(code(&refused), Some("CONFLICT"));
}
