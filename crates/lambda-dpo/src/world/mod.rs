//! A synthetic world with known rewards: invented countries and their facts, questions about
//! them, a small response grammar whose knobs set four attributes that trade off, and exact
//! reward functions — so that preference methods can be trained and *scored* without a judge.
//!
//! ```text
//! prompt    "What is the capital of Varnia?"
//! responses "Its capital is Olm."                                      brief
//!           "Great question! Its capital is Olm. I hope this helps!"   polite
//!           "Its capital is Olm. Its flag is red. It exports salt."    detailed
//!           "Its capital is Olm. I may be wrong about this."           cautious
//!           "Its capital is Kel."                                      wrong (accuracy)
//! rewards   [brevity, politeness, detail, caution] ∈ [0, 1]^4   (see `rewards`)
//! ```
//!
//! The four dimensions compete for the same four sentences, and the rewards are shaped so that
//! the best response at λ spends `4·λ_k` of them on dimension k: what a perfect policy achieves
//! on k depends on λ_k alone ([`World::oracle`]), so "does λ steer the model" has a ceiling of
//! 1 and is measurable. The SFT data holds, besides free-form conversations, demonstrations of
//! that best response under a λ written into the system message in the trainer's rendering
//! (Rewards-in-Context), so that a model can learn to read the λ line.
//!
//! The world writes everything a run needs: UltraFeedback-layout preference data and SFT data
//! ([`World::write_ultrafeedback`], [`World::write_sft`]), a byte-level BPE tokenizer trained on
//! its own language with a Llama-3-style chat template ([`World::write_tokenizer`]), and a
//! randomly initialised tiny Llama to train from scratch ([`World::write_tiny_llama`]). Every
//! file is a deterministic function of the [`WorldConfig`]. What does not live here: training
//! and sampling (the trainer, the demo command).
//!
//! Layout: `facts` (the fact table), `grammar` (prompts, responses, candidate lists), `rewards`
//! (the scoring), `files` (JSONL writers), `tokenizer`, `tiny_model`, `error`.

pub mod error;
pub mod facts;
pub mod files;
pub mod grammar;
pub mod rewards;
pub mod tiny_model;
pub mod tokenizer;

use lambda_dpo_math::rng::Rng;

pub use error::WorldError;
pub use facts::{Attribute, Entity, FactTable};
pub use grammar::Profile;
pub use rewards::DIMENSIONS;
pub use tiny_model::TinyLlama;

/// Everything that shapes a world. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct WorldConfig {
    /// Seeds the train/eval split, the candidate lists and every free choice of the grammar
    /// (the fact table itself is fixed). Default: 0.
    pub seed: u64,
    /// Prompts in the train split (clamped to the prompts that exist). Default: 96.
    pub train_prompts: usize,
    /// Prompts in the eval split (clamped to those left after the train split). Default: 24.
    pub eval_prompts: usize,
    /// Candidates per prompt in the preference data, N (at most 68, the grammar's profiles).
    /// Default: 4.
    pub responses_per_prompt: usize,
    /// Countries in the world, 1–40; there are `8 ·` this many prompts (4 attributes × 2
    /// phrasings). Default: 24.
    pub entities: usize,
    /// Share of SFT responses that state a wrong fact. Truth is not a reward dimension (it
    /// is reported as accuracy), so the default teaches none. Default: 0.
    pub sft_wrong_fraction: f64,
    /// λ-conditioned demonstrations per prompt in the SFT data: a system message with λ (a
    /// point of the 0.25 simplex grid, in the trainer's rendering) and the best response under
    /// it (at most 35, the grid's size). Default: 20 (the demo, seeds 0–2 at 3000 SFT steps:
    /// with 10 the SFT model's controllability was 0.88–0.97 per dimension, with 20 0.93–0.95;
    /// with all 35 it was 0.94–0.99 but the fact statements, then a tenth of the data, were
    /// learnt badly: 41–70 % of held-out answers right).
    pub sft_conditioned: usize,
    /// Add "Tell me about X." → every fact of X, for every country, to the train split's SFT
    /// data, so the model can learn the facts behind eval prompts too. Default: true.
    pub sft_fact_statements: bool,
    /// Copies of each fact statement in the SFT data: the facts behind eval prompts are learnt
    /// mostly from them, next to far more style text. Default: 16 (a quarter of the default
    /// SFT rows, as with 10 conditioned demonstrations and 8 copies).
    pub sft_fact_repeats: usize,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            train_prompts: 96,
            eval_prompts: 24,
            responses_per_prompt: 4,
            entities: 24,
            sft_wrong_fraction: 0.0,
            sft_conditioned: 20,
            sft_fact_statements: true,
            sft_fact_repeats: 16,
        }
    }
}

/// One question of the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// Stable id: `<attribute>/<country>/<template>`, e.g. `capital/varnia/0`.
    pub id: String,
    /// The user message.
    pub text: String,
    /// The country asked about.
    pub entity: String,
    /// What is asked.
    pub attribute: Attribute,
    /// Which phrasing of [`grammar::question_templates`].
    pub template: usize,
}

/// Which prompts a file is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Eval,
}

/// The world: its fact table, its prompts split into train and eval, and its rewards.
#[derive(Debug, Clone)]
pub struct World {
    cfg: WorldConfig,
    facts: FactTable,
    /// Every prompt, in (country, attribute, template) order.
    all: Vec<Prompt>,
    train: Vec<Prompt>,
    eval: Vec<Prompt>,
}

/// Streams of the per-prompt generators, so that one use never shifts another's draws.
#[derive(Debug, Clone, Copy)]
#[repr(u64)]
enum Stream {
    Split = 1,
    Candidates = 2,
    Sft = 3,
    Corpus = 4,
    Oracle = 5,
    Conditioned = 6,
}

/// FNV-1a: a stable hash of a prompt id (std's hashers may change between releases).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl World {
    pub fn new(cfg: WorldConfig) -> World {
        let facts = FactTable::new(cfg.entities);
        let mut all = Vec::new();
        for e in &facts.entities {
            for attr in Attribute::ALL {
                for (t, tpl) in grammar::question_templates(attr).iter().enumerate() {
                    all.push(Prompt {
                        id: format!("{}/{}/{t}", attr.name(), e.name.to_lowercase()),
                        text: grammar::fill(tpl, e.name),
                        entity: e.name.to_string(),
                        attribute: attr,
                        template: t,
                    });
                }
            }
        }
        let mut order: Vec<usize> = (0..all.len()).collect();
        grammar::shuffle(
            &mut order,
            &mut Rng::seed_from_u64(cfg.seed ^ ((Stream::Split as u64) << 56)),
        );
        let n_train = cfg.train_prompts.min(all.len());
        let n_eval = cfg.eval_prompts.min(all.len() - n_train);
        let train = order[..n_train].iter().map(|&i| all[i].clone()).collect();
        let eval = order[n_train..n_train + n_eval]
            .iter()
            .map(|&i| all[i].clone())
            .collect();
        World {
            cfg,
            facts,
            all,
            train,
            eval,
        }
    }

    pub fn config(&self) -> &WorldConfig {
        &self.cfg
    }

    /// The preference dimensions, in the fixed order of every reward vector and λ.
    pub fn dimensions(&self) -> &[&'static str] {
        &DIMENSIONS
    }

    pub fn facts(&self) -> &FactTable {
        &self.facts
    }

    pub fn train_prompts(&self) -> &[Prompt] {
        &self.train
    }

    pub fn eval_prompts(&self) -> &[Prompt] {
        &self.eval
    }

    pub fn prompts(&self, split: Split) -> &[Prompt] {
        match split {
            Split::Train => &self.train,
            Split::Eval => &self.eval,
        }
    }

    /// Every prompt of the world, in either split or none.
    pub fn all_prompts(&self) -> &[Prompt] {
        &self.all
    }

    /// The exact rewards of `response` to `prompt`, one per dimension, each in `[0, 1]`.
    pub fn rewards(&self, prompt: &Prompt, response: &str) -> Vec<f64> {
        self.rewards_explained(prompt, response).0
    }

    /// Rewards with a one-line rationale per dimension.
    pub fn rewards_explained(&self, prompt: &Prompt, response: &str) -> (Vec<f64>, Vec<String>) {
        let (r, why) = rewards::score(&self.facts, &prompt.entity, prompt.attribute, response);
        (r.to_vec(), why.to_vec())
    }

    /// `Σ_k λ_k r_k`: the scalar a λ-weighted policy is asked to maximise.
    pub fn scalarized(&self, prompt: &Prompt, response: &str, lambda: &[f64]) -> f64 {
        self.rewards(prompt, response)
            .iter()
            .zip(lambda)
            .map(|(r, l)| r * l)
            .sum()
    }

    fn rng(&self, prompt_id: &str, stream: Stream) -> Rng {
        Rng::seed_from_u64(
            self.cfg.seed ^ fnv1a(prompt_id).rotate_left(13) ^ ((stream as u64) << 56),
        )
    }

    fn entity_of(&self, prompt: &Prompt) -> &Entity {
        self.facts
            .entity(&prompt.entity)
            .unwrap_or(&self.facts.entities[0])
    }

    /// A response with the knobs of `profile` (free choices from `rng`).
    pub fn realize(&self, prompt: &Prompt, profile: Profile, rng: &mut Rng) -> String {
        grammar::realize(
            &self.facts,
            self.entity_of(prompt),
            prompt.attribute,
            profile,
            rng,
        )
    }

    /// The correctness of the answer (`1/|V_q(y)|` if the true value is named, else 0): what
    /// the model knows, reported by the demo as accuracy beside the rewards.
    pub fn answer_share(&self, prompt: &Prompt, response: &str) -> f64 {
        rewards::answer_share(&self.facts, &prompt.entity, prompt.attribute, response)
    }

    /// The preference candidates of `prompt`: N distinct profiles with the true answer, chosen
    /// out of 64 random draws to contain the most trade-offs (see
    /// [`grammar::tradeoff_score`]), with the profile of each.
    pub fn candidates(&self, prompt: &Prompt) -> Vec<(Profile, String)> {
        let n = self.cfg.responses_per_prompt.clamp(1, Profile::all().len());
        let mut rng = self.rng(&prompt.id, Stream::Candidates);
        let mut best: Option<(grammar::TradeoffScore, Vec<(Profile, String)>)> = None;
        for _ in 0..64 {
            let set: Vec<(Profile, String)> = grammar::diverse_profiles(n, 1.0, &mut rng)
                .into_iter()
                .map(|p| (p, self.realize(prompt, p, &mut rng)))
                .collect();
            let rw: Vec<Vec<f64>> = set.iter().map(|(_, t)| self.rewards(prompt, t)).collect();
            let score = grammar::tradeoff_score(&rw);
            if best.as_ref().is_none_or(|(s, _)| score > *s) {
                best = Some((score, set));
            }
        }
        best.expect("64 draws").1
    }

    /// SFT responses of `prompt`: `n` distinct profiles drawn uniformly (a share
    /// `sft_wrong_fraction` wrong), so the whole attribute space is covered.
    pub fn sft_responses(&self, prompt: &Prompt, n: usize) -> Vec<(Profile, String)> {
        let mut rng = self.rng(&prompt.id, Stream::Sft);
        grammar::diverse_profiles(n, 1.0 - self.cfg.sft_wrong_fraction, &mut rng)
            .into_iter()
            .map(|p| (p, self.realize(prompt, p, &mut rng)))
            .collect()
    }

    /// The best response the grammar can write for `lambda` (over all its profiles; ties go
    /// to the first in [`Profile::all`]'s order, the shorter), with its rewards: the ceiling a
    /// policy can reach on `Σ_k λ_k r_k`.
    pub fn oracle(&self, prompt: &Prompt, lambda: &[f64]) -> (String, Vec<f64>) {
        let mut rng = self.rng(&prompt.id, Stream::Oracle);
        self.best_response(prompt, lambda, &mut rng)
    }

    fn best_response(&self, prompt: &Prompt, lambda: &[f64], rng: &mut Rng) -> (String, Vec<f64>) {
        let mut best: Option<(f64, String, Vec<f64>)> = None;
        for p in Profile::all() {
            let text = self.realize(prompt, p, rng);
            let r = self.rewards(prompt, &text);
            let s: f64 = r.iter().zip(lambda).map(|(a, b)| a * b).sum();
            if best.as_ref().is_none_or(|(bs, _, _)| s > *bs + 1e-12) {
                best = Some((s, text, r));
            }
        }
        let (_, text, r) = best.expect("the grammar has profiles");
        (text, r)
    }

    /// λ-conditioned demonstrations of `prompt`: `n` distinct weight vectors of the simplex
    /// grid with step `1/BUDGET` (the resolution the grammar's four sentences can express:
    /// there the best response spends exactly `4·λ_k` sentences on dimension k) — the m
    /// vertices first (one dimension alone, the rarest weights: `1.00` appears in no other
    /// grid point), then random others — each with the best response under it.
    pub fn conditioned_demos(&self, prompt: &Prompt, n: usize) -> Vec<(Vec<f64>, String)> {
        let mut rng = self.rng(&prompt.id, Stream::Conditioned);
        let mut grid = lambda_dpo_math::simplex::simplex_grid(
            DIMENSIONS.len(),
            1.0 / f64::from(grammar::BUDGET),
        )
        .expect("a valid simplex grid");
        let (mut vertices, mut others): (Vec<Vec<f64>>, Vec<Vec<f64>>) =
            grid.drain(..).partition(|l| l.contains(&1.0));
        grammar::shuffle(&mut others, &mut rng);
        vertices.append(&mut others);
        vertices.truncate(n);
        vertices
            .into_iter()
            .map(|lambda| {
                let (text, _) = self.best_response(prompt, &lambda, &mut rng);
                (lambda, text)
            })
            .collect()
    }

    /// "Tell me about X." prompts with every fact of X as the answer, for every country.
    pub fn fact_statements(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for e in &self.facts.entities {
            for tpl in grammar::FACT_TEMPLATES {
                out.push((grammar::fill(tpl, e.name), grammar::fact_statement(e)));
            }
        }
        out
    }

    /// λ system prompts for the tokenizer corpus: the vertices, the centre, and Dirichlet(1)
    /// draws on the simplex (fixed stream).
    pub fn lambda_texts(&self, count: usize) -> Vec<String> {
        let m = DIMENSIONS.len();
        let mut out = Vec::with_capacity(count + m + 1);
        for k in 0..m {
            let mut l = vec![0.0; m];
            l[k] = 1.0;
            out.push(render_lambda(&DIMENSIONS, &l));
        }
        out.push(render_lambda(&DIMENSIONS, &vec![1.0 / m as f64; m]));
        let mut rng = Rng::seed_from_u64(0x1A4B_DA00);
        for _ in 0..count {
            out.push(render_lambda(&DIMENSIONS, &rng.dirichlet(&vec![1.0; m])));
        }
        out
    }

    /// All text of the world, for tokenizer training: every prompt (both splits and the
    /// unused ones), a realisation of every profile for every prompt, the fact statements,
    /// and λ system prompts.
    pub fn corpus(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.all {
            out.push(p.text.clone());
            let mut rng = self.rng(&p.id, Stream::Corpus);
            for prof in Profile::all() {
                out.push(self.realize(p, prof, &mut rng));
            }
        }
        for (q, a) in self.fact_statements() {
            out.push(q);
            out.push(a);
        }
        out.extend(self.lambda_texts(400));
        out
    }
}

/// The λ system prompt, exactly as the trainer renders it (λ on the 0.01 grid, summing to 1):
///
/// ```text
/// Preference weights: brevity=0.25, politeness=0.50, detail=0.25, caution=0.00.
/// ```
pub fn render_lambda(dims: &[&str], lambda: &[f64]) -> String {
    let dims: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    crate::train::conditioning::render_lambda(&dims, lambda)
}
