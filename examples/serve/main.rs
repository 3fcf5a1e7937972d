//! A page to draw a digit on and watch LeNet-5 read it: the ten probabilities and the C1 and C3
//! feature maps, updated as you draw.
//!
//! cargo run --release --example serve -- [--port 8000] [--host 127.0.0.1] [--threads 4]
//!
//! The page (`examples/serve/index.html`, plain HTML and JavaScript) posts the canvas as a
//! PGM picture to `/predict?model=modern` (or `report`); the server reads it as `predict`
//! reads a file (`digit::decode_image`, `digit::to_mnist`: one code path) and answers in JSON.
//! Request bodies are capped at [`MAX_BODY`] bytes; a bad request gets a 4xx with a message and
//! the server goes on.

use std::error::Error;
use std::io::Read;
use std::net::IpAddr;
use std::sync::Arc;

use clap::Parser;
use lenet5::{LeNet5, Prediction, digit};
use serde_json::{Value, json};
use tiny_http::{Header, Method, Request, Response, Server};

/// The page.
const PAGE: &str = include_str!("index.html");

/// The largest request body taken: a 280x280 canvas as PGM is 78 KB.
const MAX_BODY: usize = 1 << 20;

/// Serves the drawing page.
#[derive(Parser)]
struct Args {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0: any free port)
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Threads answering requests
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    threads: u16,
}

/// The shipped models, by the name the page selects them with.
struct Models {
    modern: LeNet5,
    report: LeNet5,
}

impl Models {
    fn get(&self, name: &str) -> Option<&LeNet5> {
        match name {
            "modern" => Some(&self.modern),
            "report" => Some(&self.report),
            _ => None,
        }
    }
}

/// An answer: a status and a JSON body.
type Answer = (u16, Value);

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let server = Server::http((args.host, args.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let server = Arc::new(server);
    let address = server
        .server_addr()
        .to_ip()
        .ok_or("the server listens on an IP address")?;
    println!("http://{address}/");
    let models = Arc::new(Models {
        modern: LeNet5::pretrained_modern(),
        report: LeNet5::pretrained(),
    });
    let workers: Vec<_> = (0..args.threads)
        .map(|_| {
            let (server, models) = (Arc::clone(&server), Arc::clone(&models));
            std::thread::spawn(move || {
                for request in server.incoming_requests() {
                    respond(request, &models);
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.join();
    }
    Ok(())
}

/// Answers one request; a client that went away is no concern of the server's.
fn respond(mut request: Request, models: &Models) {
    let json = Header::from_bytes("Content-Type", "application/json").expect("a valid header");
    let html =
        Header::from_bytes("Content-Type", "text/html; charset=utf-8").expect("a valid header");
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let answer = match (request.method(), path) {
        (Method::Get, "/") => {
            let _ = request.respond(Response::from_string(PAGE).with_header(html));
            return;
        }
        (Method::Get, "/models") => (200, json!(["modern", "report"])),
        (Method::Post, "/predict") => predict(&mut request, query, models),
        (_, "/" | "/models" | "/predict") => (405, json!({"error": "method not allowed"})),
        _ => (404, json!({"error": format!("no page {path}")})),
    };
    let (status, body) = answer;
    let response = Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(json);
    let _ = request.respond(response);
}

/// `POST /predict?model=NAME` with a picture (PNG, JPEG or PNM) as the body.
fn predict(request: &mut Request, query: &str, models: &Models) -> Answer {
    let bad = |status: u16, message: String| (status, json!({ "error": message }));
    let name = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("model="))
        .unwrap_or("modern");
    let Some(net) = models.get(name) else {
        return bad(400, format!("no model {name:?}: modern or report"));
    };
    if request.body_length().is_some_and(|n| n > MAX_BODY) {
        return bad(413, format!("the body is over {MAX_BODY} bytes"));
    }
    let mut body = Vec::new();
    let read = request
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body);
    if let Err(e) = read {
        return bad(400, format!("the body could not be read: {e}"));
    }
    if body.len() > MAX_BODY {
        return bad(413, format!("the body is over {MAX_BODY} bytes"));
    }
    match read_digit(net, &body) {
        Ok(answer) => (200, answer),
        Err(e) => bad(422, e.to_string()),
    }
}

/// The prediction for the picture `body`, the 28x28 digit the network saw, and its C1 and C3
/// maps (the first and third layers' outputs), each map scaled to 0-255.
fn read_digit(net: &LeNet5, body: &[u8]) -> lenet5::Result<Value> {
    let picture = digit::decode_image(body, "the drawing")?;
    let mnist = digit::to_mnist(&picture, "the drawing")?;
    let outputs = net.activations(net.input_of(mnist.view())?.view())?;
    let scores = outputs.last().expect("a network has layers");
    let Prediction {
        digit,
        probabilities,
    } = Prediction::from_scores(scores.as_slice().expect("standard layout"))?;
    Ok(json!({
        "digit": digit,
        "probabilities": probabilities,
        "input": mnist.iter().collect::<Vec<_>>(),
        "c1": maps(&outputs[0]),
        "c3": maps(&outputs[2]),
    }))
}

/// Each map of `output` `[1, C, H, W]`: its side and its values scaled to 0-255 over the map.
fn maps(output: &lenet5::ndarray::Array4<f32>) -> Value {
    let (_, _, h, w) = output.dim();
    let maps: Vec<Vec<u8>> = output
        .outer_iter()
        .flat_map(|sample| {
            sample
                .outer_iter()
                .map(|m| m.to_owned())
                .collect::<Vec<_>>()
        })
        .map(|map| {
            let (lo, hi) = map.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
            let range = if hi > lo { hi - lo } else { 1.0 };
            map.iter()
                .map(|v| ((v - lo) / range * 255.0).round() as u8)
                .collect()
        })
        .collect();
    json!({ "height": h, "width": w, "maps": maps })
}
