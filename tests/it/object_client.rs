//! The S3 client wrapper against a real s3s-fs server on loopback: content type and user
//! metadata kept, listing past one page (continuation), multipart, delete, redacted Debug.

use crate::object_util;

use std::collections::BTreeMap;

use bytes::Bytes;
use ferry::object::client::ObjectAttrs;
use futures::StreamExt;
use object_util::{bytes, require_s3s_fs, S3Server};

fn attrs(ct: &str, meta: &[(&str, &str)]) -> ObjectAttrs {
    ObjectAttrs {
        content_type: Some(ct.to_string()),
        metadata: meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_list_multipart_delete() {
    let Some(bin) = require_s3s_fs() else { return };
    let server = S3Server::start(&bin, "alpha", &["photos"]);
    let c = server.client("photos/2026/");

    let a = attrs("image/jpeg", &[("camera", "x100"), ("owner", "ann")]);
    c.put("dir/one.jpg", Bytes::from(bytes(1, 1000)), &a).await.unwrap();
    let (got_attrs, got) = c.get("dir/one.jpg").await.unwrap();
    assert_eq!(got.as_ref(), bytes(1, 1000).as_slice());
    assert_eq!(got_attrs, a);
    assert_eq!(c.attrs("dir/one.jpg").await.unwrap(), a);
    // The key lives under the prefix on the server.
    assert!(server.root.path().join("photos/2026/dir/one.jpg").is_file());

    // More than one page of listing (s3s-fs pages at 1,000 keys).
    let n = 1_050;
    futures::stream::iter(0..n)
        .map(|i| {
            let c = c.clone();
            async move {
                c.put(
                    &format!("many/{i:05}"),
                    Bytes::from(vec![i as u8; 10]),
                    &ObjectAttrs::default(),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let listed = c.list().await.unwrap().objects;
    assert_eq!(listed.len(), n + 1, "listing follows continuation");
    assert_eq!(listed[0].key, "dir/one.jpg");
    // s3s-fs 0.14 lists without ETags; HEAD has one.
    assert!(c.head("dir/one.jpg").await.unwrap().0.is_some());
    assert_eq!(listed[1].size, 10);

    // Multipart: 12 MiB in 5 MiB parts, three in flight.
    let big = bytes(7, 12 << 20);
    let ba = attrs("application/octet-stream", &[("kind", "big")]);
    let mut w = c.multipart("big.bin", &ba, 5 << 20, 3).await.unwrap();
    for chunk in big.chunks(1 << 20) {
        w.write(chunk).await.unwrap();
    }
    let etag = w.finish().await.unwrap();
    let (got_attrs, got) = c.get("big.bin").await.unwrap();
    assert!(got.as_ref() == big.as_slice(), "multipart object round-trips");
    assert_eq!(got_attrs, ba);
    let listed_big = c
        .list()
        .await
        .map(|l| l.objects)
        .unwrap()
        .into_iter()
        .find(|o| o.key == "big.bin")
        .unwrap();
    assert_eq!(listed_big.size, 12 << 20);
    assert!(
        listed_big.etag.as_deref().unwrap_or("").contains("-3") || etag.is_some(),
        "{listed_big:?}"
    );

    c.delete("dir/one.jpg").await.unwrap();
    c.delete("dir/one.jpg").await.unwrap(); // deleting a missing key is fine
    let err = c.get("dir/one.jpg").await.unwrap_err().to_string();
    assert!(err.contains("not found") && err.contains("dir/one.jpg"), "{err}");

    // Credentials never show.
    let shown = format!("{c:?} {:?} {:#?}", server.creds(), server.creds());
    assert!(!shown.contains(&server.secret_key), "{shown}");
    assert!(shown.contains(&server.access_key));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_an_error_without_the_secret() {
    let Some(bin) = require_s3s_fs() else { return };
    let server = S3Server::start(&bin, "beta", &["bucket-b"]);
    let loc = ferry::object::client::Location::new(&server.endpoint(), "us-east-1", "bucket-b");
    let bad = ferry::object::creds::Credentials::new(&server.access_key, "wrong-secret-value");
    let c = ferry::object::client::Client::new(&loc, &bad).unwrap();
    let err = c.list().await.unwrap_err().to_string();
    assert!(!err.contains("wrong-secret-value") && err.contains("bucket-b"), "{err}");
}
