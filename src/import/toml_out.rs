//! Writing the config as commented TOML text. A block can be written
//! commented out under a `# FIXME` when its values are wrong, so the config
//! never carries an invented value and `headnode check` stops there.

use super::values::quote;

#[derive(Debug, Default)]
pub struct Block {
    header: String,
    comments: Vec<String>,
    keys: Vec<KeyLine>,
    disabled: bool,
}

#[derive(Debug)]
struct KeyLine {
    comments: Vec<String>,
    fixme: Option<String>,
    text: String,
}

impl Block {
    pub fn new(header: &str) -> Block {
        Block {
            header: header.to_string(),
            ..Block::default()
        }
    }
    pub fn comment(&mut self, c: impl Into<String>) -> &mut Self {
        self.comments.push(c.into());
        self
    }
    /// Comment the whole block out under a FIXME.
    pub fn disable(&mut self, why: impl Into<String>) -> &mut Self {
        self.comments.push(format!("FIXME {}", why.into()));
        self.disabled = true;
        self
    }
    /// `key = value` with the value already in TOML syntax.
    pub fn raw(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.keys.push(KeyLine {
            comments: Vec::new(),
            fixme: None,
            text: format!("{key} = {}", value.into()),
        });
        self
    }
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.raw(key, quote(value))
    }
    pub fn strs<S: AsRef<str>>(&mut self, key: &str, values: &[S]) -> &mut Self {
        let items: Vec<String> = values.iter().map(|v| quote(v.as_ref())).collect();
        self.raw(key, format!("[{}]", items.join(", ")))
    }
    /// A comment line just before the next key.
    pub fn key_comment(&mut self, c: impl Into<String>) -> &mut Self {
        self.keys.push(KeyLine {
            comments: vec![c.into()],
            fixme: None,
            text: String::new(),
        });
        self
    }
    /// A key written commented out under a FIXME (the rest of the block stays live).
    pub fn fixme_key(
        &mut self,
        why: impl Into<String>,
        key: &str,
        value: impl Into<String>,
    ) -> &mut Self {
        self.keys.push(KeyLine {
            comments: Vec::new(),
            fixme: Some(why.into()),
            text: format!("{key} = {}", value.into()),
        });
        self
    }
    /// Nothing at all to say: no keys and no comments.
    pub fn is_blank(&self) -> bool {
        self.keys.is_empty() && self.comments.is_empty()
    }
    /// No live or commented-out keys (comments aside).
    pub fn is_empty(&self) -> bool {
        self.keys.iter().all(|k| k.text.is_empty())
    }

    pub fn render(&self, out: &mut String) {
        let off = if self.disabled { "# " } else { "" };
        for c in &self.comments {
            push_comment(out, c);
        }
        out.push_str(&format!("{off}{}\n", self.header));
        for k in &self.keys {
            for c in &k.comments {
                push_comment(out, c);
            }
            if let Some(f) = &k.fixme {
                push_comment(out, &format!("FIXME {f}"));
                out.push_str(&format!("# {}\n", k.text));
            } else if !k.text.is_empty() {
                out.push_str(&format!("{off}{}\n", k.text));
            }
        }
        out.push('\n');
    }
}

/// Comment lines are wrapped at spaces to stay readable in an editor.
const WIDTH: usize = 90;

/// `# text`, one line per line of `text`, long lines wrapped.
pub fn push_comment(out: &mut String, text: &str) {
    for l in text.lines() {
        if l.is_empty() {
            out.push_str("#\n");
            continue;
        }
        let mut line = String::new();
        for word in l.split(' ') {
            if !line.is_empty() && line.len() + 1 + word.len() > WIDTH {
                out.push_str(&format!("# {line}\n"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&format!("# {line}\n"));
    }
}
