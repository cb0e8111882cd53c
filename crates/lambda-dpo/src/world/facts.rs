//! The world's fact table: invented countries, each with a capital, a flag colour, a main export
//! and a national animal, plus the lexicon that maps a word back to the fact it can state.
//!
//! The table is fixed (it does not depend on the world's seed), so documentation and tests can
//! say "the capital of Varnia is Olm". Capitals are unique per country; colours, exports and
//! animals are shared, drawn once from a fixed stream. What does not live here: how prompts and
//! responses are phrased (`grammar`), how a text is scored (`rewards`).

use std::collections::HashMap;

use lambda_dpo_math::rng::Rng;

/// The most countries a world can have (the length of [`COUNTRIES`]).
pub const MAX_ENTITIES: usize = 40;

/// Country names; country `i` has capital `CAPITALS[i]`.
pub const COUNTRIES: [&str; MAX_ENTITIES] = [
    "Varnia", "Drelmor", "Quenlis", "Tazhir", "Belmora", "Kestovia", "Ulvaran", "Morvath",
    "Sennika", "Pyrelle", "Zandor", "Heskeld", "Orlune", "Fennmark", "Cassomir", "Vyrtis",
    "Lothmere", "Tirsova", "Gallavan", "Essevia", "Rudmark", "Ilvania", "Korrin", "Sorbek",
    "Yennet", "Brasken", "Calderra", "Wystan", "Helvor", "Jorund", "Pellanor", "Quorth", "Dunmire",
    "Arveth", "Nolvenia", "Skarra", "Emberly", "Toskar", "Valdren", "Mirova",
];

/// Capital cities, one per country (same index).
pub const CAPITALS: [&str; MAX_ENTITIES] = [
    "Olm", "Kel", "Varo", "Semb", "Drisk", "Antha", "Pelt", "Yarl", "Quill", "Istra", "Brem",
    "Tolle", "Marn", "Vesk", "Lune", "Harrow", "Ost", "Cindra", "Pav", "Dova", "Fyn", "Hask",
    "Iri", "Jessa", "Kolt", "Lorn", "Mesk", "Nimb", "Orro", "Prax", "Rill", "Sask", "Tamb", "Uvel",
    "Vant", "Wex", "Zeb", "Corra", "Bex", "Gorm",
];

/// Flag colours.
pub const COLORS: [&str; 8] = [
    "red", "blue", "green", "gold", "white", "black", "purple", "orange",
];

/// Main exports.
pub const EXPORTS: [&str; 10] = [
    "salt", "wool", "copper", "tea", "silk", "amber", "timber", "honey", "glass", "rice",
];

/// National animals.
pub const ANIMALS: [&str; 10] = [
    "fox", "owl", "bear", "wolf", "heron", "lynx", "stag", "hare", "falcon", "otter",
];

/// The fixed stream the shared attributes are drawn from (independent of the world's seed).
const FACT_SEED: u64 = 0x5EED_FAC7;

/// What a question asks about; also the kinds of fact a response can state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attribute {
    Capital,
    Flag,
    Export,
    Animal,
}

impl Attribute {
    pub const ALL: [Attribute; 4] = [
        Attribute::Capital,
        Attribute::Flag,
        Attribute::Export,
        Attribute::Animal,
    ];

    /// Stable lowercase name (used in prompt ids).
    pub fn name(self) -> &'static str {
        match self {
            Attribute::Capital => "capital",
            Attribute::Flag => "flag",
            Attribute::Export => "export",
            Attribute::Animal => "animal",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One country and its four facts (values as written in text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub name: &'static str,
    pub capital: &'static str,
    pub flag: &'static str,
    pub export: &'static str,
    pub animal: &'static str,
}

impl Entity {
    /// The true value of `attr`.
    pub fn value(&self, attr: Attribute) -> &'static str {
        match attr {
            Attribute::Capital => self.capital,
            Attribute::Flag => self.flag,
            Attribute::Export => self.export,
            Attribute::Animal => self.animal,
        }
    }
}

/// The countries of one world and the lexicon of every fact word.
#[derive(Debug, Clone)]
pub struct FactTable {
    pub entities: Vec<Entity>,
    /// Lowercase word → the attribute it is a value of (each value word belongs to one kind).
    lexicon: HashMap<String, Attribute>,
}

impl FactTable {
    /// The first `n` countries of the fixed table (`1 ≤ n ≤ MAX_ENTITIES`, clamped).
    pub fn new(n: usize) -> Self {
        let n = n.clamp(1, MAX_ENTITIES);
        // Draw for all MAX_ENTITIES so that a smaller world is a prefix of a larger one.
        let mut rng = Rng::seed_from_u64(FACT_SEED);
        let mut pick = |list: &[&'static str]| list[rng.below(list.len() as u64) as usize];
        let all: Vec<Entity> = (0..MAX_ENTITIES)
            .map(|i| Entity {
                name: COUNTRIES[i],
                capital: CAPITALS[i],
                flag: pick(&COLORS),
                export: pick(&EXPORTS),
                animal: pick(&ANIMALS),
            })
            .collect();
        let entities: Vec<Entity> = all.into_iter().take(n).collect();
        let mut lexicon = HashMap::new();
        for e in &entities {
            lexicon.insert(e.capital.to_lowercase(), Attribute::Capital);
        }
        for (list, attr) in [
            (&COLORS[..], Attribute::Flag),
            (&EXPORTS[..], Attribute::Export),
            (&ANIMALS[..], Attribute::Animal),
        ] {
            for v in list {
                lexicon.insert(v.to_string(), attr);
            }
        }
        Self { entities, lexicon }
    }

    /// The country called `name` (exact spelling).
    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name == name)
    }

    /// Every value `attr` can take in this world (capitals: those of its countries).
    pub fn values(&self, attr: Attribute) -> Vec<&'static str> {
        match attr {
            Attribute::Capital => self.entities.iter().map(|e| e.capital).collect(),
            Attribute::Flag => COLORS.to_vec(),
            Attribute::Export => EXPORTS.to_vec(),
            Attribute::Animal => ANIMALS.to_vec(),
        }
    }

    /// The kind of fact a lowercase word is a value of, if any.
    pub fn kind_of(&self, word_lower: &str) -> Option<Attribute> {
        self.lexicon.get(word_lower).copied()
    }
}
