//! The job queue through its doors: schedules run, run-now, cancel of a running job,
//! timeouts, retries with backoff, ownership on every door, validation naming the field,
//! `kill -9` during a run (exactly one retry, every record kept), and two processes on one
//! PostgreSQL database running each due job exactly once. The jobs are real `agent_prompt`
//! jobs whose answers come from the scripted upstream.

use crate::both_backends;
use crate::chat_turns::{remote_model, slow};
use crate::mock_llm::{MockLlm, Script};
use crate::support::{next_json, ws_subscribed, Backend, TestServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Short leases and backoffs so the tests see retries in seconds.
fn quick(c: &mut hearth::config::Config) {
    c.jobs.retry_base_secs = 1;
    c.jobs.lease_secs = 3;
    c.jobs.min_interval_secs = 1;
    c.jobs.kind_concurrency.insert("agent_prompt".into(), 4);
}

/// An agent answering on the scripted upstream; returns its id.
async fn mock_agent(s: &TestServer, admin: &str, mock: &MockLlm) -> i64 {
    let key = remote_model(s, admin, "mock", &mock.base_url, 8192).await;
    let (_, b) = s
        .gql(
            Some(admin),
            "mutation($i: CreateAgentInput!) { createAgent(input: $i) { id } }",
            json!({"i": {"name": "Reporter", "model": key, "isPublic": true}}),
        )
        .await;
    b["data"]["createAgent"]["id"]
        .as_str()
        .expect("agent id")
        .parse()
        .unwrap()
}

/// A server with short leases, the scripted upstream, an admin and an agent answering there.
async fn setup(b: Backend) -> (TestServer, MockLlm, crate::support::Login, i64) {
    let s = TestServer::start_with(b, quick).await;
    let mock = MockLlm::start().await;
    let admin = s.user("admin").await;
    let agent = mock_agent(&s, &admin.access, &mock).await;
    (s, mock, admin, agent)
}

/// `POST /jobs/add`; returns the new job's id.
async fn add_job(s: &TestServer, token: &str, body: Value) -> i64 {
    let (st, b) = s.post("/jobs/add", Some(token), body).await;
    assert_eq!(st, StatusCode::OK, "{b}");
    b["id"].as_i64().expect("job id")
}

fn prompt_job(agent: i64, schedule: Value) -> Value {
    json!({"name": "Daily report", "kind": "agent_prompt",
           "payload": {"agent_id": agent, "prompt": "Write the report"},
           "schedule": schedule})
}

fn now_ts() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// Polls `GET /jobs/{id}` until `done` holds (at most 30 s).
async fn wait_job(s: &TestServer, token: &str, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let (st, job) = s.get(&format!("/jobs/{id}"), Some(token)).await;
        assert_eq!(st, StatusCode::OK, "{job}");
        if done(&job) {
            return job;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "job never reached the expected state: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn runs(s: &TestServer, token: &str, id: i64) -> Vec<Value> {
    let (st, b) = s
        .get(&format!("/jobs/{id}/runs?limit=100"), Some(token))
        .await;
    assert_eq!(st, StatusCode::OK, "{b}");
    let mut runs = b["runs"].as_array().unwrap().clone();
    runs.reverse();
    runs
}

async fn a_one_off_job_runs_and_lands_in_a_chat(b: Backend) {
    let (s, _mock, admin, agent) = setup(b).await;
    let id = add_job(
        &s,
        &admin.access,
        prompt_job(agent, json!({"once": now_ts()})),
    )
    .await;
    let job = wait_job(&s, &admin.access, id, |j| j["state"] == "succeeded").await;
    let run = &job["last_run"];
    assert_eq!(run["outcome"], "succeeded", "{job}");
    assert_eq!(run["attempt"], 1);
    assert_eq!(run["cause"], "schedule");
    assert_eq!(run["output"]["content"], "Hello from upstream");
    assert!(job["next_run_at"].is_null());
    // The answer is in a chat named after the job.
    let chat = run["output"]["chat_id"].as_i64().unwrap();
    let (_, c) = s
        .gql(
            Some(&admin.access),
            "query($c: ID!) { chat(id: $c) { title messages(last: 2) { role content } } }",
            json!({"c": chat.to_string()}),
        )
        .await;
    assert_eq!(c["data"]["chat"]["title"], "Daily report", "{c}");
    assert_eq!(
        c["data"]["chat"]["messages"][1]["content"],
        "Hello from upstream"
    );
    // GraphQL sees the same job and its runs.
    let (_, g) = s
        .gql(
            Some(&admin.access),
            "query($id: ID!) { job(id: $id) { state kind schedule { once } runs { outcome attempt output } } }",
            json!({"id": id.to_string()}),
        )
        .await;
    assert_eq!(g["data"]["job"]["state"], "SUCCEEDED", "{g}");
    assert_eq!(g["data"]["job"]["runs"][0]["outcome"], "SUCCEEDED");
}

async fn an_interval_job_repeats_until_paused(b: Backend) {
    let (s, _mock, admin, agent) = setup(b).await;
    let id = add_job(
        &s,
        &admin.access,
        prompt_job(agent, json!({"every_secs": 1})),
    )
    .await;
    let start = Instant::now();
    while runs(&s, &admin.access, id).await.len() < 2 {
        assert!(start.elapsed() < Duration::from_secs(20), "no second run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (st, j) = s
        .post(&format!("/jobs/{id}/pause"), Some(&admin.access), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK, "{j}");
    // Let a run that was claimed before the pause end, then nothing more runs.
    wait_job(&s, &admin.access, id, |j| j["state"] == "paused").await;
    let before = runs(&s, &admin.access, id).await.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(runs(&s, &admin.access, id).await.len(), before);
    let job = wait_job(&s, &admin.access, id, |_| true).await;
    assert!(
        job["next_run_at"].is_string(),
        "a paused job keeps its schedule: {job}"
    );
    let (st, _) = s
        .post(
            &format!("/jobs/{id}/resume"),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    let start = Instant::now();
    while runs(&s, &admin.access, id).await.len() <= before {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "resumed job never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn run_now_then_cancel_a_running_job(b: Backend) {
    let (s, mock, admin, agent) = setup(b).await;
    // Far in the future: only run-now starts it.
    let id = add_job(
        &s,
        &admin.access,
        prompt_job(agent, json!({"once": "2099-01-01T00:00:00Z"})),
    )
    .await;
    let mut ws = ws_subscribed(
        &s,
        &admin.access,
        "1",
        &format!("subscription {{ jobEvents(jobId: \"{id}\") {{ kind job {{ state }} }} }}"),
    )
    .await;
    mock.push(slow(200, 50));
    let (st, j) = s
        .post(
            &format!("/jobs/{id}/run-now"),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{j}");
    // The subscription sees the run start.
    loop {
        let ev = next_json(&mut ws).await.expect("job event");
        if ev["payload"]["data"]["jobEvents"]["job"]["state"] == "RUNNING" {
            break;
        }
    }
    // Wait for the answer to be under way (its chat is in the progress report).
    wait_job(&s, &admin.access, id, |j| j["progress"]["chat_id"].is_i64()).await;
    let (st, again) = s
        .post(
            &format!("/jobs/{id}/run-now"),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT, "{again}");
    let (st, c) = s
        .post(
            &format!("/jobs/{id}/cancel"),
            Some(&admin.access),
            json!({}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["cancel_requested"], true);
    let job = wait_job(&s, &admin.access, id, |j| j["state"] != "running").await;
    assert_eq!(job["last_run"]["outcome"], "cancelled", "{job}");
    // Run-now did not move the schedule: the 2099 occurrence is still ahead.
    assert_eq!(job["state"], "scheduled");
    assert_eq!(job["next_run_at"], "2099-01-01T00:00:00Z");
    // The partial answer was kept as cancelled in its chat.
    let chat = job["progress"]["chat_id"].as_i64().unwrap();
    let (_, c) = s
        .gql(
            Some(&admin.access),
            "query($c: ID!) { chat(id: $c) { messages(last: 1) { status content } } }",
            json!({"c": chat.to_string()}),
        )
        .await;
    let last = &c["data"]["chat"]["messages"][0];
    assert_eq!(last["status"], "cancelled", "{c}");
    assert!(last["content"].as_str().unwrap().starts_with("t0 "), "{c}");
    // Not running, a one-off job's cancel drops its pending occurrence; then nothing is left.
    let cancel = format!("/jobs/{id}/cancel");
    let (st, c) = s.post(&cancel, Some(&admin.access), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["state"], "cancelled");
    assert!(c["next_run_at"].is_null());
    let (st, _) = s.post(&cancel, Some(&admin.access), json!({})).await;
    assert_eq!(st, StatusCode::CONFLICT);
}

async fn a_run_past_its_timeout_is_ended(b: Backend) {
    let (s, mock, admin, agent) = setup(b).await;
    mock.push(slow(200, 50));
    let mut body = prompt_job(agent, json!({"once": now_ts()}));
    body["timeout_secs"] = json!(1);
    body["max_attempts"] = json!(1);
    let id = add_job(&s, &admin.access, body).await;
    let job = wait_job(&s, &admin.access, id, |j| j["state"] == "failed").await;
    assert_eq!(job["last_run"]["outcome"], "timed_out", "{job}");
    assert_eq!(runs(&s, &admin.access, id).await.len(), 1);
}

async fn failed_attempts_are_retried_with_backoff(b: Backend) {
    let (s, mock, admin, agent) = setup(b).await;
    let mut down = Script::tokens(&["x"]);
    down.status = 500;
    mock.push(down.clone());
    mock.push(down);
    let mut body = prompt_job(agent, json!({"once": now_ts()}));
    body["max_attempts"] = json!(3);
    let id = add_job(&s, &admin.access, body).await;
    let job = wait_job(&s, &admin.access, id, |j| j["state"] == "succeeded").await;
    let all = runs(&s, &admin.access, id).await;
    let outcomes: Vec<_> = all.iter().map(|r| r["outcome"].clone()).collect();
    assert_eq!(outcomes, vec!["failed", "failed", "succeeded"], "{job}");
    let attempts: Vec<_> = all.iter().map(|r| r["attempt"].as_i64().unwrap()).collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    assert_eq!(all[1]["cause"], "retry");
    let at = |r: &Value| {
        chrono::DateTime::parse_from_rfc3339(r["started_at"].as_str().unwrap()).unwrap()
    };
    // Backoff: 1 s after the first failure, 2 s after the second (timestamps are whole seconds).
    assert!((at(&all[1]) - at(&all[0])).num_seconds() >= 1);
    assert!((at(&all[2]) - at(&all[1])).num_seconds() >= 2);
    assert!(
        all[0]["error"]
            .as_str()
            .unwrap()
            .contains("llm_unavailable"),
        "{}",
        all[0]
    );
}

async fn bad_jobs_are_refused_naming_the_field(b: Backend) {
    let (s, _mock, admin, agent) = setup(b).await;
    let refused = |body: Value, field: &'static str| {
        let s = &s;
        let token = admin.access.clone();
        async move {
            let (st, b) = s.post("/jobs/add", Some(&token), body).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
            assert_eq!(b["details"]["field"], field, "{b}");
        }
    };
    refused(
        prompt_job(agent, json!({"cron": "61 * * * *"})),
        "schedule.cron",
    )
    .await;
    refused(
        prompt_job(agent, json!({"cron": "0 9 * * *", "timezone": "Moon/Base"})),
        "schedule.timezone",
    )
    .await;
    refused(
        prompt_job(agent, json!({"every_secs": -5})),
        "schedule.every_secs",
    )
    .await;
    refused(
        prompt_job(agent, json!({"every_secs": "often"})),
        "schedule.every_secs",
    )
    .await;
    refused(
        prompt_job(agent, json!({"once": "tomorrow"})),
        "schedule.once",
    )
    .await;
    refused(
        prompt_job(agent, json!({"hourly": true})),
        "schedule.hourly",
    )
    .await;
    let mut body = prompt_job(agent, json!({"every_secs": 60}));
    body["kind"] = json!("mine_bitcoin");
    refused(body, "kind").await;
    let mut body = prompt_job(agent, json!({"every_secs": 60}));
    body["payload"] = json!({"agent_id": "Reporter", "prompt": "x"});
    refused(body, "payload.agent_id").await;
    let mut body = prompt_job(agent, json!({"every_secs": 60}));
    body["payload"] = json!({"agent_id": agent});
    refused(body, "payload.prompt").await;
    let mut body = prompt_job(agent, json!({"every_secs": 60}));
    body["payload"] = json!({"agent_id": 999_999, "prompt": "x"});
    refused(body, "payload.agent_id").await;
    let mut body = prompt_job(agent, json!({"every_secs": 60}));
    body["max_attempts"] = json!(0);
    refused(body, "max_attempts").await;
    // Malformed, anonymous, oversize.
    let res = s
        .http
        .post(s.url("/jobs/add"))
        .bearer_auth(&admin.access)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let (st, _) = s
        .post(
            "/jobs/add",
            None,
            prompt_job(agent, json!({"every_secs": 60})),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let mut body = prompt_job(agent, json!({"every_secs": 60}));
    body["payload"]["prompt"] = json!("x".repeat(70_000));
    let (st, b) = s.post("/jobs/add", Some(&admin.access), body).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{b}");
    // GraphQL names the same field.
    let (_, g) = s
        .gql(
            Some(&admin.access),
            "mutation($i: CreateJobInput!) { createJob(input: $i) { id } }",
            json!({"i": {"name": "x", "kind": "agent_prompt", "payload": {"agent_id": agent, "prompt": "x"},
                         "schedule": {"cron": "not a cron"}}}),
        )
        .await;
    assert_eq!(TestServer::gql_code(&g), "validation_error", "{g}");
    assert_eq!(
        g["errors"][0]["extensions"]["details"]["field"],
        "schedule.cron"
    );
    // Nothing was stored.
    let (_, list) = s.get("/jobs", Some(&admin.access)).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0, "{list}");
}

async fn jobs_are_their_owners_on_every_door(b: Backend) {
    let (s, _mock, admin, agent) = setup(b).await;
    let alice = s.user("alice").await;
    let bob = s.user("bob").await;
    let id = add_job(
        &s,
        &alice.access,
        prompt_job(agent, json!({"once": "2099-01-01T00:00:00Z"})),
    )
    .await;
    let path = |p: &str| format!("/jobs/{id}{p}");
    // Bob sees nothing and touches nothing.
    let (_, list) = s.get("/jobs", Some(&bob.access)).await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0);
    assert_eq!(
        s.get(&path(""), Some(&bob.access)).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        s.get(&path("/runs"), Some(&bob.access)).await.0,
        StatusCode::NOT_FOUND
    );
    for door in ["/run-now", "/cancel", "/pause", "/resume", "/update"] {
        let (st, b) = s
            .post(&path(door), Some(&bob.access), json!({"name": "mine"}))
            .await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{door}: {b}");
    }
    let (st, _) = s
        .call(reqwest::Method::DELETE, &path(""), Some(&bob.access), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    for q in [
        "query($id: ID!) { job(id: $id) { id } }",
        "mutation($id: ID!) { runJobNow(id: $id) { id } }",
        "mutation($id: ID!) { cancelJob(id: $id) { id } }",
        "mutation($id: ID!) { pauseJob(id: $id) { id } }",
        "mutation($id: ID!) { resumeJob(id: $id) { id } }",
        "mutation($id: ID!) { deleteJob(id: $id) }",
        "mutation($id: ID!) { updateJob(id: $id, input: {name: \"mine\"}) { id } }",
    ] {
        let (_, g) = s
            .gql(Some(&bob.access), q, json!({"id": id.to_string()}))
            .await;
        assert_eq!(TestServer::gql_code(&g), "not_found", "{q}: {g}");
    }
    let (_, g) = s
        .gql(Some(&bob.access), "{ jobs { jobs { id } } }", json!({}))
        .await;
    assert_eq!(g["data"]["jobs"]["jobs"].as_array().unwrap().len(), 0);
    // Without credentials: 401.
    assert_eq!(s.get("/jobs", None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(s.get(&path(""), None).await.0, StatusCode::UNAUTHORIZED);
    // The job is untouched, and the admin sees and manages it.
    let (_, job) = s.get(&path(""), Some(&alice.access)).await;
    assert_eq!(job["name"], "Daily report");
    assert_eq!(job["state"], "scheduled");
    let (_, all) = s.get("/jobs", Some(&admin.access)).await;
    assert_eq!(all["jobs"].as_array().unwrap().len(), 1);
    let (st, _) = s
        .post(&path("/pause"), Some(&admin.access), json!({}))
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = s
        .call(
            reqwest::Method::DELETE,
            &path(""),
            Some(&alice.access),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        s.get(&path(""), Some(&alice.access)).await.0,
        StatusCode::NOT_FOUND
    );
}

/// A job acts only while the key that created it is live: revoking the key stops its running
/// run and fails it without retry, and later runs fail at once.
async fn a_revoked_key_stops_its_jobs(b: Backend) {
    let (s, mock, admin, agent) = setup(b).await;
    let (_, k) = s
        .gql(
            Some(&admin.access),
            "mutation { createApiKey(input: {name: \"cron\", permissions: [\"read\", \"write\"]}) { secret apiKey { id } } }",
            json!({}),
        )
        .await;
    let key = k["data"]["createApiKey"]["secret"]
        .as_str()
        .expect("key")
        .to_string();
    let key_id = k["data"]["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut body = prompt_job(agent, json!({"once": "2099-01-01T00:00:00Z"}));
    body["max_attempts"] = json!(3);
    let res = s
        .http
        .post(s.url("/jobs/add"))
        .header("x-api-key", &key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    mock.push(slow(200, 50));
    s.post(
        &format!("/jobs/{id}/run-now"),
        Some(&admin.access),
        json!({}),
    )
    .await;
    wait_job(&s, &admin.access, id, |j| j["progress"]["chat_id"].is_i64()).await;
    let (_, r) = s
        .gql(
            Some(&admin.access),
            "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
            json!({"id": key_id}),
        )
        .await;
    assert!(r["errors"].is_null(), "{r}");
    let job = wait_job(&s, &admin.access, id, |j| j["state"] != "running").await;
    assert_eq!(job["last_run"]["outcome"], "failed", "{job}");
    assert!(
        job["last_run"]["error"]
            .as_str()
            .unwrap()
            .contains("api_key_revoked"),
        "{job}"
    );
    // No retry brings a revoked key back.
    assert_eq!(job["attempt"], 0, "{job}");
    assert!(job["retry_at"].is_null());
    // A later run fails at once.
    s.post(
        &format!("/jobs/{id}/run-now"),
        Some(&admin.access),
        json!({}),
    )
    .await;
    let start = Instant::now();
    while runs(&s, &admin.access, id).await.len() < 2
        || wait_job(&s, &admin.access, id, |_| true).await["state"] == "running"
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "second run never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = runs(&s, &admin.access, id).await;
    assert_eq!(all.len(), 2);
    assert!(all[1]["error"]
        .as_str()
        .unwrap()
        .contains("api_key_revoked"));
}

both_backends!(
    a_one_off_job_runs_and_lands_in_a_chat,
    an_interval_job_repeats_until_paused,
    run_now_then_cancel_a_running_job,
    a_run_past_its_timeout_is_ended,
    failed_attempts_are_retried_with_backoff,
    bad_jobs_are_refused_naming_the_field,
    jobs_are_their_owners_on_every_door,
    a_revoked_key_stops_its_jobs,
);

/// Two servers on one PostgreSQL database: 200 due jobs, each run exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_run_each_due_job_exactly_once() {
    let a = TestServer::start_with(Backend::Postgres, quick).await;
    let url = a.state.config.database_url();
    let b = TestServer::start_with(Backend::Postgres, |c| {
        quick(c);
        c.database_url = Some(url);
    })
    .await;
    let mock = MockLlm::start().await;
    let admin = a.user("admin").await;
    let agent = mock_agent(&a, &admin.access, &mock).await;
    // Created paused, then released together, so both workers find them due at once.
    let mut ids = Vec::new();
    for i in 0..200 {
        let mut body = prompt_job(agent, json!({"once": now_ts()}));
        body["name"] = json!(format!("job {i}"));
        body["paused"] = json!(true);
        ids.push(add_job(&a, &admin.access, body).await);
    }
    for (i, id) in ids.iter().enumerate() {
        let s = if i % 2 == 0 { &a } else { &b };
        let (st, _) = s
            .post(
                &format!("/jobs/{id}/resume"),
                Some(&admin.access),
                json!({}),
            )
            .await;
        assert_eq!(st, StatusCode::OK);
    }
    let start = Instant::now();
    loop {
        let (_, l) = a
            .get("/jobs?state=succeeded&limit=100", Some(&admin.access))
            .await;
        let (_, l2) = a
            .get(
                &format!(
                    "/jobs?state=succeeded&limit=100&after={}",
                    l["next_cursor"].as_str().unwrap_or("")
                ),
                Some(&admin.access),
            )
            .await;
        let done =
            l["jobs"].as_array().unwrap().len() + l2["jobs"].as_array().map(Vec::len).unwrap_or(0);
        if done == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{done} of 200 done"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The runs table: exactly one run per job, all succeeded, by both workers.
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use hearth::db::schema::job_runs;
    let hearth::db::Db::Pg(pool) = &a.state.db else {
        unreachable!()
    };
    let mut conn = pool.get().await.unwrap();
    let rows: Vec<(i64, String, String)> = job_runs::table
        .select((job_runs::job_id, job_runs::outcome, job_runs::worker))
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 200);
    let mut jobs: Vec<i64> = rows.iter().map(|r| r.0).collect();
    jobs.sort_unstable();
    jobs.dedup();
    assert_eq!(jobs.len(), 200, "a job ran twice");
    assert!(rows.iter().all(|r| r.1 == "succeeded"));
    let workers: std::collections::HashSet<_> = rows.iter().map(|r| r.2.clone()).collect();
    assert_eq!(workers.len(), 2, "both processes took jobs: {workers:?}");
    assert_eq!(mock.requests().len(), 200);
}

/// A `hearth serve` child process.
pub(crate) struct Served {
    pub child: std::process::Child,
    pub base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn hearth_cmd(data: &std::path::Path, db_url: &str) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hearth"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HEARTH_") {
            c.env_remove(k);
        }
    }
    c.env("HEARTH_DATA_DIR", data)
        .env("HEARTH_DATABASE_URL", db_url)
        .env("HEARTH_JOBS__RETRY_BASE_SECS", "1")
        .env("HEARTH_JOBS__LEASE_SECS", "3");
    c
}

pub(crate) async fn serve(data: &std::path::Path, db_url: &str) -> Served {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = hearth_cmd(data, db_url)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while reqwest::get(format!("{base}/health")).await.is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Served { child, base }
}

/// Creates the admin `root` (password `correct-horse`) with `hearth user create`.
pub(crate) fn create_root(data: &std::path::Path, db_url: &str) {
    let out = hearth_cmd(data, db_url)
        .args([
            "user",
            "create",
            "--email",
            "root@example.com",
            "--username",
            "root",
        ])
        .args(["--password", "correct-horse", "--admin"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `root`'s access token on the server at `base`.
pub(crate) async fn login_root(base: &str) -> String {
    let login: Value = reqwest::Client::new()
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"username": "root", "password": "correct-horse"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["access_token"].as_str().unwrap().to_string()
}

pub(crate) async fn call(
    base: &str,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> Value {
    let res = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

/// `kill -9` of the server during a run, then a restart: the run is kept as `interrupted`
/// and retried exactly once.
async fn a_killed_server_retries_the_run_once(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db_url = match b {
        Backend::Sqlite => format!("sqlite://{}", data.join("hearth.db").display()),
        Backend::Postgres => crate::support::pg_database().await,
    };
    create_root(&data, &db_url);
    let mock = MockLlm::start().await;
    let mut first = serve(&data, &db_url).await;
    let token = login_root(&first.base).await;
    let gql = |q: &str, v: Value| json!({"query": q, "variables": v});
    let base = first.base.clone();
    call(&base, &token, reqwest::Method::POST, "/graphql", gql(
        "mutation($i: ModelInput!) { registerModel(input: $i) { key } }",
        json!({"i": {"key": "mock", "provider": "openai", "baseUrl": mock.base_url, "contextLength": 8192}}),
    )).await;
    let a = call(
        &base,
        &token,
        reqwest::Method::POST,
        "/graphql",
        gql(
            "mutation { createAgent(input: {name: \"Reporter\", model: \"mock\"}) { id } }",
            json!({}),
        ),
    )
    .await;
    let agent: i64 = a["data"]["createAgent"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    mock.set_default(slow(400, 25));
    let mut body = prompt_job(agent, json!({"once": now_ts()}));
    body["max_attempts"] = json!(3);
    let id = call(&base, &token, reqwest::Method::POST, "/jobs/add", body).await["id"]
        .as_i64()
        .unwrap();
    let start = Instant::now();
    loop {
        let job = call(
            &base,
            &token,
            reqwest::Method::GET,
            &format!("/jobs/{id}"),
            Value::Null,
        )
        .await;
        if job["progress"]["chat_id"].is_i64() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never started: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let tokens flow, then kill the server without a chance to store anything.
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);
    mock.set_default(Script::tokens(&["Recovered"]));
    let second = serve(&data, &db_url).await;
    let base = second.base.clone();
    let start = Instant::now();
    let job = loop {
        let job = call(
            &base,
            &token,
            reqwest::Method::GET,
            &format!("/jobs/{id}"),
            Value::Null,
        )
        .await;
        if job["state"] == "succeeded" {
            break job;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "never retried: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let all = call(
        &base,
        &token,
        reqwest::Method::GET,
        &format!("/jobs/{id}/runs"),
        Value::Null,
    )
    .await;
    let all = all["runs"].as_array().unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    // Newest first.
    assert_eq!(all[1]["outcome"], "interrupted", "{all:?}");
    assert_eq!(all[1]["attempt"], 1);
    assert!(all[1]["finished_at"].is_string());
    assert_eq!(all[0]["outcome"], "succeeded");
    assert_eq!(all[0]["attempt"], 2);
    assert_eq!(all[0]["cause"], "retry");
    assert_eq!(job["last_run"]["output"]["content"], "Recovered");
}

both_backends!(a_killed_server_retries_the_run_once);

/// `hearth jobs list|run|cancel` work on the queue as the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_lists_runs_and_cancels_jobs() {
    let mut s = TestServer::start_with(Backend::Sqlite, quick).await;
    let mock = MockLlm::start().await;
    let admin = s.user("admin").await;
    let agent = mock_agent(&s, &admin.access, &mock).await;
    let id = add_job(
        &s,
        &admin.access,
        prompt_job(agent, json!({"once": "2099-01-01T00:00:00Z"})),
    )
    .await;
    let db_url = s.state.config.database_url();
    s.stop_and_wait().await;
    let dir = s.keep_data();
    // The state holds the SQLite file's instance lock until it is gone.
    drop(s);
    let data = dir.path().to_path_buf();
    let run = |args: &[&str]| {
        let out = hearth_cmd(&data, &db_url).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let list = run(&["jobs", "list"]);
    assert!(
        list.contains("Daily report") && list.contains("scheduled"),
        "{list}"
    );
    let ran = run(&["jobs", "run", &id.to_string()]);
    assert!(ran.contains("run requested"), "{ran}");
    let cancelled = run(&["jobs", "cancel", &id.to_string()]);
    assert!(cancelled.contains("cancelled"), "{cancelled}");
    let out = hearth_cmd(&data, &db_url)
        .args(["jobs", "run", "999999"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_found"));
}

/// Finished runs older than the retention are pruned; each job's latest run stays.
async fn old_runs_are_pruned(b: Backend) {
    let (s, _mock, admin, agent) = setup(b).await;
    let id = add_job(
        &s,
        &admin.access,
        prompt_job(agent, json!({"once": now_ts()})),
    )
    .await;
    wait_job(&s, &admin.access, id, |j| j["state"] == "succeeded").await;
    s.post(
        &format!("/jobs/{id}/run-now"),
        Some(&admin.access),
        json!({}),
    )
    .await;
    let start = Instant::now();
    while runs(&s, &admin.access, id)
        .await
        .iter()
        .filter(|r| r["outcome"] == "succeeded")
        .count()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "second run never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both runs finished 40 days ago; the retention is 30.
    let db = &s.state.db;
    let r = age_runs(db, hearth::service::now() - chrono::Duration::days(40)).await;
    assert_eq!(r.unwrap(), 2);
    let pruned = hearth::jobs::store::prune(db, chrono::Duration::days(30))
        .await
        .unwrap();
    assert_eq!(pruned, 1);
    let left = runs(&s, &admin.access, id).await;
    assert_eq!(left.len(), 1);
    let job = wait_job(&s, &admin.access, id, |_| true).await;
    assert_eq!(left[0]["id"], job["last_run"]["id"], "the latest run stays");
}

both_backends!(old_runs_are_pruned);

async fn age_runs(
    db: &hearth::db::Db,
    finished: chrono::NaiveDateTime,
) -> hearth::error::AppResult<usize> {
    use diesel::prelude::*;
    use diesel_async::RunQueryDsl;
    use hearth::db::schema::job_runs;
    hearth::db_run!(db, write, |conn| diesel::update(job_runs::table)
        .set(job_runs::finished_at.eq(Some(finished)))
        .execute(conn)
        .await
        .map_err(hearth::error::AppError::from))
}
