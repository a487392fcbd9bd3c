//! What several benchmarks share: a throw-away account, a fixed random generator, the CPU's
//! name. Included with `#[path = "common.rs"] mod common;` (not a benchmark of its own).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use hearth::state::AppState;

/// Registers `username` (password `password123`) and answers its id and a fresh access
/// token.
pub async fn account(state: &AppState, username: &str, admin: bool) -> (i64, String) {
    let user = hearth::service::auth::register(
        state,
        hearth::service::auth::RegisterInput {
            email: format!("{username}@example.com"),
            password: "password123".into(),
            username: Some(username.into()),
            name: None,
            admin,
            setup_token: None,
        },
        true,
        &Default::default(),
    )
    .await
    .unwrap();
    let token = hearth::service::auth::login(state, username, "password123", Default::default())
        .await
        .unwrap()
        .access_token;
    (user.id, token)
}

/// xorshift64*: a fixed, fast generator, so every run draws the same data.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

/// The CPU's model name, for the report.
pub fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(str::to_string)
        })
        .unwrap_or_default()
}
