//! vCard 3.0 and 4.0 (RFC 2426, RFC 6350), parsed and written by
//! `calcard`. An imported `.vcf` file becomes rows of contacts for the CSV
//! import (one card a row, read a card at a time), so cards get the same
//! checks, staging, error file and revert; an export writes the CSV export
//! of contacts as cards in either version.
//!
//! What a card fills: N (or FN) → first and last name; the preferred EMAIL;
//! TEL → phone (mobile for TYPE=CELL); ORG → the account (by name, made
//! when missing) and its unit → department; TITLE; BDAY; the preferred (or
//! work) ADR → the mailing address; UID → externalId (so a card imported
//! again with UPSERT changes its contact); NOTE and URL fill fields with
//! those names, when the workspace has them.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};

use calcard::common::{IanaType, PartialDateTime};
use calcard::vcard::{
    VCard, VCardEntry, VCardParameter, VCardParameterName, VCardProperty, VCardType, VCardValue, VCardVersion,
};

/// The contact fields a card holds, in the order cards are read and written.
const FIELDS: [&str; 14] = [
    "firstName",
    "lastName",
    "email",
    "phone",
    "mobile",
    "title",
    "department",
    "account",
    "birthdate",
    "mailingStreet",
    "mailingCity",
    "mailingState",
    "mailingPostalCode",
    "mailingCountry",
];

/// The columns a card is read into: the [`FIELDS`], then `externalId`
/// (UID), fields a workspace may have (NOTE, URL) and [`UNREADABLE`].
fn columns() -> Vec<&'static str> {
    FIELDS
        .iter()
        .copied()
        .chain(["externalId", "Note", "URL", UNREADABLE])
        .collect()
}

/// The fields an export of contacts as cards reads, in the order [`card`]
/// takes them: `id`, the [`FIELDS`], `externalId`.
pub fn exported() -> Vec<&'static str> {
    ["id"].into_iter().chain(FIELDS).chain(["externalId"]).collect()
}

/// The column saying why a card could not be read (empty when it could):
/// such a card's row is refused as MALFORMED.
pub const UNREADABLE: &str = "vCard error";

/// Whether the start of a file looks like vCards.
pub fn looks_like_vcard(start: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&start[..start.len().min(256)]);
    text.trim_start_matches('\u{feff}')
        .trim_start()
        .to_ascii_uppercase()
        .starts_with("BEGIN:VCARD")
}

/// A `.vcf` file read as CSV rows of its [`columns`], a card at a time.
pub struct CardRows {
    lines: std::io::Lines<BufReader<Box<dyn Read + Send>>>,
    out: VecDeque<u8>,
    header: bool,
}

impl CardRows {
    pub fn new(source: Box<dyn Read + Send>) -> Self {
        CardRows {
            lines: BufReader::new(source).lines(),
            out: VecDeque::new(),
            header: false,
        }
    }

    /// The next card's text, BEGIN to END; `None` at the end.
    fn next_card(&mut self) -> std::io::Result<Option<String>> {
        let mut card = String::new();
        for line in self.lines.by_ref() {
            let line = line?;
            let upper = line.trim().to_ascii_uppercase();
            if card.is_empty() && !upper.starts_with("BEGIN:VCARD") {
                continue;
            }
            card.push_str(&line);
            card.push_str("\r\n");
            if card.len() as u64 > super::reader::MAX_RECORD {
                return Err(std::io::Error::other(
                    "a vCard is longer than 16 MB: is its END:VCARD missing?",
                ));
            }
            if upper.starts_with("END:VCARD") {
                return Ok(Some(card));
            }
        }
        Ok((!card.is_empty()).then_some(card))
    }

    fn write_row(&mut self, cells: &[String]) {
        let mut writer = csv::Writer::from_writer(Vec::new());
        // Writing into memory cannot fail.
        let _ = writer.write_record(cells);
        if let Ok(bytes) = writer.into_inner() {
            self.out.extend(bytes);
        }
    }
}

impl Read for CardRows {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        if !self.header {
            self.header = true;
            let header: Vec<String> = columns().iter().map(|c| (*c).to_owned()).collect();
            self.write_row(&header);
        }
        while self.out.is_empty() {
            let Some(text) = self.next_card()? else {
                return Ok(0);
            };
            let cells = match VCard::parse(&text) {
                Ok(card) => row(&card),
                // A card that cannot be read keeps its row, refused as MALFORMED.
                Err(entry) => {
                    let mut cells = vec![String::new(); columns().len()];
                    if let Some(last) = cells.last_mut() {
                        *last = format!("the card could not be read ({entry:?})");
                    }
                    cells
                }
            };
            self.write_row(&cells);
        }
        let n = buffer.len().min(self.out.len());
        for (slot, byte) in buffer.iter_mut().zip(self.out.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

fn text(entry: &VCardEntry) -> String {
    entry
        .values
        .first()
        .and_then(|v| v.as_text())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Component `i` of a structured value (N, ADR, ORG).
fn component(entry: &VCardEntry, i: usize) -> String {
    match entry.values.get(i) {
        Some(VCardValue::Component(list)) => list.join(" ").trim().to_owned(),
        Some(value) => value.as_text().unwrap_or_default().trim().to_owned(),
        None => String::new(),
    }
}

/// The TYPE values of a property, lower case.
fn types(entry: &VCardEntry) -> Vec<String> {
    entry
        .parameters(&VCardParameterName::Type)
        .filter_map(|p| p.as_type())
        .map(|t| match t {
            IanaType::Iana(t) => format!("{t:?}").to_ascii_lowercase(),
            IanaType::Other(s) => s.to_ascii_lowercase(),
        })
        .collect()
}

fn preferred(entry: &VCardEntry) -> bool {
    entry.parameters(&VCardParameterName::Pref).next().is_some() || types(entry).iter().any(|t| t == "pref")
}

/// The preferred property of a kind, else the first.
fn first_preferred<'c>(card: &'c VCard, property: &'c VCardProperty) -> Option<&'c VCardEntry> {
    card.properties(property)
        .find(|e| preferred(e))
        .or_else(|| card.property(property))
}

fn date(entry: &VCardEntry) -> String {
    match entry.values.first() {
        Some(VCardValue::PartialDateTime(PartialDateTime {
            year: Some(year),
            month: Some(month),
            day: Some(day),
            ..
        })) => format!("{year:04}-{month:02}-{day:02}"),
        Some(value) => value.as_text().unwrap_or_default().to_owned(),
        None => String::new(),
    }
}

/// A card's cells in [`columns`] order.
fn row(card: &VCard) -> Vec<String> {
    let (mut first, mut last) = card
        .property(&VCardProperty::N)
        .map(|n| (component(n, 1), component(n, 0)))
        .unwrap_or_default();
    let full = card.property(&VCardProperty::Fn).map(text).unwrap_or_default();
    let org = card.property(&VCardProperty::Org);
    if last.is_empty() && first.is_empty() {
        match full.rsplit_once(' ') {
            Some((given, family)) => (first, last) = (given.to_owned(), family.to_owned()),
            None => last = full.clone(),
        }
    }
    if last.is_empty() {
        last = org.map(|o| component(o, 0)).unwrap_or_default();
    }
    let email = first_preferred(card, &VCardProperty::Email)
        .map(text)
        .unwrap_or_default();
    let (mut phone, mut mobile) = (String::new(), String::new());
    for tel in card.properties(&VCardProperty::Tel) {
        let number = text(tel).trim_start_matches("tel:").to_owned();
        let slot = if types(tel).iter().any(|t| t == "cell") {
            &mut mobile
        } else {
            &mut phone
        };
        if slot.is_empty() || preferred(tel) {
            *slot = number;
        }
    }
    let adr = card
        .properties(&VCardProperty::Adr)
        .find(|a| preferred(a))
        .or_else(|| {
            card.properties(&VCardProperty::Adr)
                .find(|a| types(a).iter().any(|t| t == "work"))
        })
        .or_else(|| card.property(&VCardProperty::Adr));
    let part = |i: usize| adr.map(|a| component(a, i)).unwrap_or_default();
    let uid = card.uid().unwrap_or_default().trim().to_owned();
    vec![
        first,
        last,
        email,
        phone,
        mobile,
        card.property(&VCardProperty::Title).map(text).unwrap_or_default(),
        org.map(|o| component(o, 1)).unwrap_or_default(),
        org.map(|o| component(o, 0)).unwrap_or_default(),
        card.property(&VCardProperty::Bday).map(date).unwrap_or_default(),
        part(2),
        part(3),
        part(4),
        part(5),
        part(6),
        uid,
        card.property(&VCardProperty::Note).map(text).unwrap_or_default(),
        card.property(&VCardProperty::Url).map(text).unwrap_or_default(),
        String::new(),
    ]
}

/// One exported contact (cells of [`exported`]) as a
/// card in `version`.
pub fn card(cells: &[String], version: VCardVersion) -> String {
    let cell = |i: usize| cells.get(i).map(String::as_str).unwrap_or_default();
    let t = |s: &str| VCardValue::Text(s.to_owned());
    let mut entries = vec![
        VCardEntry::new(VCardProperty::Fn).with_value(format!("{} {}", cell(1), cell(2)).trim().to_owned()),
        VCardEntry::new(VCardProperty::N).with_values(vec![t(cell(2)), t(cell(1)), t(""), t(""), t("")]),
    ];
    if !cell(8).is_empty() || !cell(7).is_empty() {
        entries.push(VCardEntry::new(VCardProperty::Org).with_values(vec![t(cell(8)), t(cell(7))]));
    }
    if !cell(6).is_empty() {
        entries.push(VCardEntry::new(VCardProperty::Title).with_value(cell(6).to_owned()));
    }
    if !cell(3).is_empty() {
        let email = VCardEntry::new(VCardProperty::Email).with_param(VCardParameter::typ(VCardType::Work));
        entries.push(email.with_value(cell(3).to_owned()));
    }
    for (i, kind) in [(4, VCardType::Work), (5, VCardType::Cell)] {
        if !cell(i).is_empty() {
            let tel = VCardEntry::new(VCardProperty::Tel).with_param(VCardParameter::typ(kind));
            entries.push(
                tel.with_param(VCardParameter::typ(VCardType::Voice))
                    .with_value(cell(i).to_owned()),
            );
        }
    }
    if (10..15).any(|i| !cell(i).is_empty()) {
        let parts = vec![
            t(""),
            t(""),
            t(cell(10)),
            t(cell(11)),
            t(cell(12)),
            t(cell(13)),
            t(cell(14)),
        ];
        let adr = VCardEntry::new(VCardProperty::Adr).with_param(VCardParameter::typ(VCardType::Work));
        entries.push(adr.with_values(parts));
    }
    if let Some((year, month, day)) = ymd(cell(9)) {
        entries.push(
            VCardEntry::new(VCardProperty::Bday).with_value(VCardValue::PartialDateTime(PartialDateTime {
                year: Some(year),
                month: Some(month),
                day: Some(day),
                ..Default::default()
            })),
        );
    }
    let uid = match cell(15) {
        "" => format!("urn:uuid:{}", cell(0)),
        external => external.to_owned(),
    };
    entries.push(VCardEntry::new(VCardProperty::Uid).with_value(uid));
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = VCard { entries }.write_to(&mut out, version);
    out
}

fn ymd(text: &str) -> Option<(u16, u8, u8)> {
    let mut parts = text.splitn(3, '-');
    Some((
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    ))
}
