//! Isolation, the property users trust most: for every query and mutation in the schema
//! (enumerated from the schema itself, so a new field is covered the day it is added), a
//! caller aimed at another tenant's ids gets NOT_FOUND or FORBIDDEN, and nothing changes.
#![expect(clippy::unwrap_used, reason = "tests")]

mod support;

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use support::graphql::{Backend, Platform, code, platform};

/// Fields that address no tenant by id: they act on the caller itself (or create a tenant,
/// or redeem a token). Each is checked separately below; any other field must take a tenant
/// id and is attacked with the other tenant's ids.
const CALLER_SCOPED: &[&str] = &[
    "me",
    "allTenants",
    "signUp",
    "verifyEmail",
    "resendVerificationEmail",
    "logIn",
    "logOut",
    "requestPasswordReset",
    "resetPassword",
    "changePassword",
    "enrollTotp",
    "confirmTotp",
    "createTenant",
    "acceptInvite",
];

const TYPE_REF: &str = "kind name ofType { kind name ofType { kind name ofType { kind name } } }";

/// The other tenant's ids, by argument name.
struct Target {
    ids: BTreeMap<&'static str, String>,
}

fn literal(value: &Value) -> String {
    match value {
        Value::String(s) if s.starts_with("ENUM:") => s["ENUM:".len()..].to_owned(),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{k}: {}", literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(literal).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

struct Schema {
    types: BTreeMap<String, Value>,
}

impl Schema {
    /// A value for an argument or input field of type `ty` named `name`.
    fn value(&self, name: &str, ty: &Value, target: &Target) -> Value {
        match ty["kind"].as_str().unwrap() {
            "NON_NULL" => self.value(name, &ty["ofType"], target),
            "LIST" => json!([self.value(name, &ty["ofType"], target)]),
            "ENUM" => {
                let t = &self.types[ty["name"].as_str().unwrap()];
                json!(format!(
                    "ENUM:{}",
                    t["enumValues"][0]["name"].as_str().unwrap()
                ))
            }
            "INPUT_OBJECT" => {
                let t = &self.types[ty["name"].as_str().unwrap()];
                let mut object = serde_json::Map::new();
                for field in t["inputFields"].as_array().unwrap() {
                    let field_name = field["name"].as_str().unwrap();
                    object.insert(
                        field_name.to_owned(),
                        self.value(field_name, &field["type"], target),
                    );
                }
                Value::Object(object)
            }
            _ => match (ty["name"].as_str().unwrap(), name) {
                ("ID", n) => json!(
                    target
                        .ids
                        .get(n)
                        .cloned()
                        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
                ),
                ("String", "email") => json!("mallory@example.com"),
                ("String", _) => json!("mallory"), // valid as a name, slug, key or reason
                ("Int", _) => json!(1),
                ("Boolean", _) => json!(true),
                (other, _) => panic!("no value for scalar {other}"),
            },
        }
    }
}

async fn schema(p: &Platform) -> (Schema, Vec<(&'static str, Value)>) {
    let query = format!(
        "{{ __schema {{ queryType {{ name }} mutationType {{ name }} types {{ name kind \
         fields {{ name args {{ name type {{ {TYPE_REF} }} }} }} \
         inputFields {{ name type {{ {TYPE_REF} }} }} enumValues {{ name }} }} }} }}"
    );
    let data = p.api.ok(None, &query, json!({})).await;
    let types: BTreeMap<String, Value> = data["__schema"]["types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_owned(), t.clone()))
        .collect();
    let mut roots = Vec::new();
    for (keyword, root) in [("query", "Query"), ("mutation", "Mutation")] {
        let root_name = data["__schema"][format!("{keyword}Type")]["name"]
            .as_str()
            .unwrap();
        assert!(root_name.starts_with(root), "{root_name}");
        for field in types[root_name]["fields"].as_array().unwrap() {
            roots.push((keyword, field.clone()));
        }
    }
    (Schema { types }, roots)
}

/// What another tenant looks like from its owner's side: must not change under attack.
async fn state_of(p: &Platform, token: &str, tenant: &str) -> Value {
    p.api
        .ok(
            Some(token),
            "query($t: ID!) { tenant(id: $t) { name slug status settings { key value } \
             members { edges { node { userId role } } } invites { edges { node { id role } } } \
             apiKeys { edges { node { id scope revokedAt } } } } }",
            json!({"t": tenant}),
        )
        .await
}

async fn every_field_refuses_another_tenants_ids(backend: Backend) {
    let p = platform(backend, &[]).await;
    let alice = p.person("alice@example.com").await;
    let tenant_a = p.tenant(&alice, "alpha").await;
    let (_, alice_key) = p.api_key(&alice, &tenant_a, "ADMIN").await;

    let bob = p.person("bob@example.com").await;
    let tenant_b = p.tenant(&bob, "bravo").await;
    let carol = p.person("carol@example.com").await;
    p.join(&bob, &tenant_b, &carol, "MEMBER").await;
    let (bob_key_id, _) = p.api_key(&bob, &tenant_b, "READ_ONLY").await;
    let invited = p
        .api
        .ok(
            Some(&bob.token),
            "mutation($t: ID!) { inviteMember(tenantId: $t, email: \"dave@example.com\", role: ADMIN) { invite { id } } }",
            json!({"t": tenant_b}),
        )
        .await;
    let invite_b = invited["inviteMember"]["invite"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let forged_invite = format!(
        "{}.{}.not-the-secret",
        uuid::Uuid::parse_str(&tenant_b).unwrap().simple(),
        uuid::Uuid::parse_str(&invite_b).unwrap().simple()
    );

    let target = Target {
        ids: BTreeMap::from([
            ("tenantId", tenant_b.clone()),
            ("id", tenant_b.clone()),
            ("userId", carol.user_id.clone()),
            ("apiKeyId", bob_key_id.clone()),
            ("inviteId", invite_b.clone()),
        ]),
    };
    let (schema, roots) = schema(&p).await;
    let before = state_of(&p, &bob.token, &tenant_b).await;
    let head = p.api.head().await;

    // Every mutation takes an optional idempotency key.
    for (keyword, field) in &roots {
        if *keyword == "mutation" {
            let key = field["args"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["name"] == "idempotencyKey");
            assert!(
                key.is_some_and(|k| k["type"]["kind"] != "NON_NULL" && k["type"]["name"] == "ID"),
                "{} has no optional idempotencyKey: ID",
                field["name"]
            );
        }
    }

    let mut unclassified = BTreeSet::new();
    let mut attacked = 0;
    for (keyword, field) in &roots {
        let name = field["name"].as_str().unwrap();
        let args = field["args"].as_array().unwrap();
        let addresses_tenant = args.iter().any(|a| {
            let arg = a["name"].as_str().unwrap();
            arg == "tenantId" || (name == "tenant" && arg == "id")
        });
        if !addresses_tenant {
            if !CALLER_SCOPED.contains(&name) {
                unclassified.insert(name.to_owned());
            }
            continue;
        }
        // Required arguments, and every id argument; optional ones are left out.
        let rendered: Vec<String> = args
            .iter()
            .filter(|a| {
                a["type"]["kind"] == "NON_NULL"
                    || target.ids.contains_key(a["name"].as_str().unwrap())
            })
            .map(|a| {
                let arg = a["name"].as_str().unwrap();
                format!(
                    "{arg}: {}",
                    literal(&schema.value(arg, &a["type"], &target))
                )
            })
            .collect();
        let operation = format!(
            "{keyword} {{ {name}({}) {{ __typename }} }}",
            rendered.join(", ")
        );
        for (who, token) in [
            ("alice's session", &alice.token),
            ("alice's admin key", &alice_key),
        ] {
            let response = p.api.gql(Some(token), &operation, json!({})).await;
            let got = code(&response);
            assert!(
                matches!(got, Some("NOT_FOUND" | "FORBIDDEN")),
                "{who}: {operation}\n=> {response:#}"
            );
            assert!(
                response["data"].is_null() || response["data"][name].is_null(),
                "{response}"
            );
            attacked += 1;
        }
    }
    assert!(
        unclassified.is_empty(),
        "fields that take no tenant id and are not known to be caller-scoped: {unclassified:?}; \
         classify them in CALLER_SCOPED (and test them) or give them a tenantId"
    );
    assert!(
        attacked >= 2 * 12,
        "only {attacked} attacks: the enumeration found too few fields"
    );

    // The caller-scoped fields, aimed at the other tenant the only ways they can be.
    let me = p
        .api
        .ok(
            Some(&alice.token),
            "{ me { tenants { edges { node { id } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(me["me"]["tenants"]["edges"].as_array().unwrap().len(), 1);
    assert_eq!(
        me["me"]["tenants"]["edges"][0]["node"]["id"],
        tenant_a.as_str()
    );
    for token in [&alice.token, &alice_key] {
        let all = p
            .api
            .gql(
                Some(token),
                "{ allTenants { edges { node { id } } } }",
                json!({}),
            )
            .await;
        assert_eq!(code(&all), Some("FORBIDDEN"), "{all}");
    }
    let accept = "mutation($t: String!) { acceptInvite(token: $t) { tenant { id } } }";
    let forged = p
        .api
        .gql(Some(&alice.token), accept, json!({"t": forged_invite}))
        .await;
    assert!(
        matches!(code(&forged), Some("BAD_USER_INPUT" | "FORBIDDEN")),
        "{forged}"
    );

    assert_eq!(p.api.head().await, head, "a refused attack wrote nothing");
    assert_eq!(
        state_of(&p, &bob.token, &tenant_b).await,
        before,
        "the other tenant is unchanged"
    );
}

on_both!(every_field_refuses_another_tenants_ids);
