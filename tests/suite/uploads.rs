//! WAR uploads through the real router: real WARs from Debian packages, and every
//! kind of bad input, each leaving nothing behind.

use crate::support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use support::{fixture, zip_of, TestApp};

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

#[tokio::test]
async fn real_wars_are_stored_with_their_facts() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;

    // Tomcat's sample: web.xml claims j2ee 2.4, the servlet it declares uses jakarta.servlet.
    let sample = read("sample.war");
    let reply = app.upload(&token, "sample", "sample.war", sample.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["size"], sample.len());
    assert_eq!(reply.body["sha256"], sha256_hex(&sample));
    assert_eq!(reply.body["servlet_api"], "jakarta");
    assert_eq!(reply.body["servlet_api_source"], "entry-points");
    assert_eq!(reply.body["servlet_api_evidence"], "jakarta.servlet by what Tomcat loads: mypackage.Hello (servlet in web.xml, WEB-INF/classes)");
    assert_eq!(reply.body["has_web_xml"], true);

    let gatekeeper = app.upload(&token, "gatekeeper", "gatekeeper-0.8.1.war", read("gatekeeper-0.8.1.war")).await;
    assert_eq!(gatekeeper.status, StatusCode::CREATED, "{}", gatekeeper.text);
    assert_eq!(gatekeeper.body["servlet_api"], "javax");

    let sitemesh = app.upload(&token, "blank", "sitemesh-blank.war", read("sitemesh-blank.war")).await;
    assert_eq!(sitemesh.status, StatusCode::CREATED, "{}", sitemesh.text);
    assert_ne!(sitemesh.body["servlet_api"], "jakarta", "{}", sitemesh.text);

    let listed = app.call(Method::GET, "/api/v1/wars", Some(&token), None).await;
    let names: Vec<_> = listed.body.as_array().unwrap().iter().map(|w| w["file"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names, ["sitemesh-blank.war", "gatekeeper-0.8.1.war", "sample.war"]);

    let one = app.call(Method::GET, "/api/v1/wars/sample/sample.war", Some(&token), None).await;
    assert_eq!(one.body, reply.body);
    let blob = local_blob(&app, reply.body["sha256"].as_str().unwrap());
    assert_eq!(std::fs::read(blob).unwrap(), sample, "stored bytes are the uploaded bytes");
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn the_same_bytes_are_stored_once_and_kept_while_referenced() {
    let app = TestApp::embedded().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let war = read("sample.war");
    assert_eq!(app.upload(&alice, "shop", "shop-1.war", war.clone()).await.status, StatusCode::CREATED);
    assert_eq!(app.upload(&alice, "shop", "shop-2.war", war.clone()).await.status, StatusCode::CREATED);
    assert_eq!(app.upload(&bob, "mine", "mine.war", war.clone()).await.status, StatusCode::CREATED);
    assert_eq!(app.stored_files().len(), 1, "one blob for three uploads: {:?}", app.stored_files());

    // Replacing an upload answers 200 and moves the name to the new bytes.
    let replaced = app.upload(&alice, "shop", "shop-2.war", read("gatekeeper-0.8.1.war")).await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(app.stored_files().len(), 2);

    for (token, path) in [(&alice, "/api/v1/wars/shop/shop-1.war"), (&bob, "/api/v1/wars/mine/mine.war")] {
        assert_eq!(app.call(Method::DELETE, path, Some(token), None).await.status, StatusCode::NO_CONTENT);
    }
    assert_eq!(app.stored_files().len(), 1, "the sample's bytes went with their last reference");
    assert_eq!(app.call(Method::DELETE, "/api/v1/wars/shop/shop-2.war", Some(&alice), None).await.status, StatusCode::NO_CONTENT);
    assert!(app.stored_files().is_empty());
    assert_eq!(app.call(Method::GET, "/api/v1/wars", Some(&alice), None).await.body, json!([]));
}

#[tokio::test]
async fn another_users_war_is_not_found() {
    let app = TestApp::embedded().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.upload(&alice, "shop", "shop.war", read("sample.war")).await;
    for method in [Method::GET, Method::DELETE] {
        let reply = app.call(method, "/api/v1/wars/shop/shop.war", Some(&bob), None).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        assert_eq!(reply.problem_code(), "war.not_found");
    }
    assert_eq!(app.call(Method::GET, "/api/v1/wars", Some(&bob), None).await.body, json!([]));
    assert_eq!(app.call(Method::GET, "/api/v1/wars/shop/shop.war", Some(&alice), None).await.status, StatusCode::OK);
}

/// Each bad upload gets its own code and leaves no file and no record.
#[tokio::test]
async fn bad_uploads_are_refused_and_leave_nothing() {
    let app = TestApp::embedded_with(|c| c.uploads.max_bytes = 600_000).await;
    let token = app.user("alice").await;
    let good = read("sample.war");
    let traversal = zip_of(&[("WEB-INF/web.xml", b"<web-app/>"), ("../../etc/cron.d/evil", b"* * * * * root sh")]);
    let bomb = {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.start_file("WEB-INF/web.xml", zip::write::SimpleFileOptions::default()).unwrap();
        w.start_file("WEB-INF/lib/zeros.bin", zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated)).unwrap();
        for _ in 0..64 {
            w.write_all(&[0u8; 1 << 20]).unwrap();
        }
        w.finish().unwrap().into_inner()
    };
    let oversize = vec![b'x'; 600_001];
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode, &str)> = vec![
        ("shop", "empty.war", Vec::new(), StatusCode::BAD_REQUEST, "war.empty"),
        ("shop", "text.war", b"this is not a zip".to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "war.not_zip"),
        ("shop", "truncated.war", good[..good.len() / 2].to_vec(), StatusCode::UNPROCESSABLE_ENTITY, "war.not_zip"),
        ("shop", "slip.war", traversal, StatusCode::UNPROCESSABLE_ENTITY, "war.unsafe_path"),
        ("shop", "bomb.war", bomb, StatusCode::UNPROCESSABLE_ENTITY, "war.compression_ratio"),
        ("shop", "lib.war", read("jets3t-cockpitlite-0.8.1.jar"), StatusCode::UNPROCESSABLE_ENTITY, "war.plain_jar"),
        ("shop", "big.war", oversize, StatusCode::PAYLOAD_TOO_LARGE, "war.too_large"),
        ("Shop", "shop.war", good.clone(), StatusCode::BAD_REQUEST, "war.invalid_name"),
        ("shop", "shop.jar", good.clone(), StatusCode::BAD_REQUEST, "war.invalid_name"),
        ("shop", "..war", good.clone(), StatusCode::BAD_REQUEST, "war.invalid_name"),
        ("shop", "..%2F..%2Fshop.war", good.clone(), StatusCode::BAD_REQUEST, "war.invalid_name"),
        ("shop", "a%2Fb.war", good.clone(), StatusCode::BAD_REQUEST, "war.invalid_name"),
    ];
    for (app_name, file, bytes, status, code) in cases {
        let reply = app.upload(&token, app_name, file, bytes).await;
        assert_eq!(reply.status, status, "{file}: {}", reply.text);
        assert_eq!(reply.problem_code(), code, "{file}");
        assert!(app.stored_files().is_empty(), "{file} left {:?}", app.stored_files());
    }
    let plain_jar = app.upload(&token, "shop", "lib.war", read("jets3t-cockpitlite-0.8.1.jar")).await;
    assert!(plain_jar.body["detail"].as_str().unwrap().contains("plain JAR"), "{}", plain_jar.text);
    let too_large = app.upload(&token, "shop", "big.war", vec![b'x'; 600_001]).await;
    assert!(too_large.body["detail"].as_str().unwrap().contains("600000 bytes"), "the cap is named: {}", too_large.text);
    assert_eq!(app.call(Method::GET, "/api/v1/wars", Some(&token), None).await.body, json!([]));
}

#[tokio::test]
async fn a_declared_length_over_the_cap_is_refused_before_reading() {
    let app = TestApp::embedded_with(|c| c.uploads.max_bytes = 1000).await;
    let token = app.user("alice").await;
    // The body never ends: only the Content-Length header can answer this in time.
    let endless = futures_util::stream::repeat_with(|| Ok::<_, std::io::Error>(bytes::Bytes::from_static(&[0u8; 1024])));
    let request = Request::put("/api/v1/wars/shop/shop.war")
        .header("authorization", format!("Bearer {token}"))
        .header("content-length", "5000000000")
        .body(Body::from_stream(endless))
        .unwrap();
    let reply = tokio::time::timeout(std::time::Duration::from_secs(5), app.send(request)).await.expect("answered without reading the body");
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_body_that_breaks_off_leaves_nothing() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let good = read("sample.war");
    let half = bytes::Bytes::copy_from_slice(&good[..good.len() / 2]);
    let broken = futures_util::stream::iter(vec![Ok(half), Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "peer went away"))]);
    let request = Request::put("/api/v1/wars/shop/shop.war")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from_stream(broken))
        .unwrap();
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.problem_code(), "war.interrupted");
    assert!(app.stored_files().is_empty(), "{:?}", app.stored_files());
    assert_eq!(app.call(Method::GET, "/api/v1/wars", Some(&token), None).await.body, json!([]));
}

fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "warship-test-boundary";
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn original_upload_and_getuploadwars() {
    let app = TestApp::embedded().await;
    let token = app.user("alice").await;
    let war = read("gatekeeper-0.8.1.war");
    // The file before the name, as some front ends send it.
    let (content_type, body) = multipart(&[("file", Some("gatekeeper.war"), &war), ("name", None, b"gatekeeper"), ("version", None, b"0.8.1")]);
    let request = Request::post("/upload")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    assert_eq!(reply.body["name"], "gatekeeper-0.8.1.war");
    assert_eq!(reply.body["status"], "uploaded");
    assert_eq!(reply.body["value"], sha256_hex(&war));

    let listed = app.call(Method::GET, "/getuploadwars", Some(&token), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["name"], "alice");
    let apps = listed.body["children"].as_array().unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0]["name"], "gatekeeper");
    let wars = apps[0]["children"].as_array().unwrap();
    assert_eq!(wars[0]["name"], "gatekeeper-0.8.1.war");
    let servlet = wars[0]["context"].as_array().unwrap().iter().find(|c| c["name"] == "servletApi").unwrap();
    assert_eq!(servlet["value"], "javax");

    // The same WAR is visible through the new API.
    let new_api = app.call(Method::GET, "/api/v1/wars/gatekeeper/gatekeeper-0.8.1.war", Some(&token), None).await;
    assert_eq!(new_api.status, StatusCode::OK);

    let (content_type, body) = multipart(&[("name", None, b"x")]);
    let request = Request::post("/upload")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let reply = app.send(request).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.problem_code(), "war.missing_file");

    let (content_type, body) = multipart(&[("file", Some("x.war"), b"not a zip"), ("name", None, b"x")]);
    let request = Request::post("/upload")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(Body::from(body))
        .unwrap();
    let reply = app.send(request).await;
    assert_eq!(reply.problem_code(), "war.not_zip");
    assert_eq!(app.stored_files().len(), 1, "only the good upload's blob");
}

#[tokio::test]
async fn durable_uploads_are_stored_the_same_way() {
    let app = TestApp::embedded_with(|c| c.uploads.fsync = true).await;
    let token = app.user("alice").await;
    let war = read("sample.war");
    let reply = app.upload(&token, "shop", "shop.war", war.clone()).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let blob = local_blob(&app, reply.body["sha256"].as_str().unwrap());
    assert_eq!(std::fs::read(blob).unwrap(), war);
    assert_eq!(app.stored_files().len(), 1, "no temp file left: {:?}", app.stored_files());
}

/// Where the local backend keeps a blob.
fn local_blob(app: &TestApp, sha256: &str) -> std::path::PathBuf {
    match app.state.wars.source(sha256) {
        warship_host::image::Source::File(path) => path,
        other => panic!("the in-process app keeps WARs on local disk, not in {other:?}"),
    }
}
