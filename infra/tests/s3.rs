//! The S3 export target against a real S3 server (moto, path-style): small objects in one
//! request, large ones streamed in parts, nothing visible before completion.
#![expect(clippy::unwrap_used, reason = "tests")]

use domain::audit::export::ExportTarget;
use infra::s3::{PART, S3Target};
use infra::testing::Moto;

async fn object(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let got = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    Some(got.body.collect().await.unwrap().into_bytes().to_vec())
}

#[tokio::test]
async fn objects_small_and_large_arrive_whole() {
    let moto = Moto::start().await;
    let client = moto.bucket("audit").await;
    let target = S3Target::new(client.clone(), "audit", "acme/trail.jsonl");

    let mut small = target.open(".digest.json").await.unwrap();
    small.write(b"{\"a\":1}\n").await.unwrap();
    assert_eq!(
        small.finish().await.unwrap(),
        "s3://audit/acme/trail.jsonl.digest.json"
    );
    assert_eq!(
        object(&client, "audit", "acme/trail.jsonl.digest.json")
            .await
            .unwrap(),
        b"{\"a\":1}\n"
    );

    // Two and a half parts, written in uneven pieces.
    let total = PART * 5 / 2;
    let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let mut large = target.open("").await.unwrap();
    for piece in data.chunks(777_777) {
        large.write(piece).await.unwrap();
    }
    assert_eq!(
        object(&client, "audit", "acme/trail.jsonl").await,
        None,
        "nothing is visible before the upload completes"
    );
    large.finish().await.unwrap();
    let stored = object(&client, "audit", "acme/trail.jsonl").await.unwrap();
    assert_eq!(stored.len(), data.len());
    assert!(stored == data, "the object's bytes are the ones written");
}

#[tokio::test]
async fn a_missing_bucket_is_a_clear_error() {
    let moto = Moto::start().await;
    let client = moto.settings().client();
    let target = S3Target::new(client, "no-such-bucket", "x.jsonl");
    let mut writer = target.open("").await.unwrap();
    writer.write(b"x").await.unwrap();
    let error = writer.finish().await.unwrap_err().to_string();
    assert!(error.contains("NoSuchBucket"), "{error}");
}
