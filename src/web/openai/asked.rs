//! A chat completion request read and checked into an [`ApiTurn`]: what
//! this API can't do (several choices, tools, images, log probabilities,
//! JSON modes) is refused with a 400 naming the field, never ignored, and
//! every message is held to its limits before the request counts against
//! the caller's.

use super::request::{KeyCaller, OpenAiApi};
use super::wire::{ChatRequest, Content, RequestMessage, StopField};
use super::OpenAiError;
use crate::config::ApiSettings;
use app::ports::{ApiModel, ApiTurn};
use app::wire::Role;

/// OpenAI's limit on stop sequences.
const MAX_STOPS: usize = 4;
const MAX_STOP_CHARS: usize = 200;

/// A request read and checked.
pub(super) struct Asked {
    /// The model id as the client named it (echoed in every response).
    pub(super) model: String,
    pub(super) grounded: bool,
    pub(super) stream: bool,
    pub(super) include_usage: bool,
    pub(super) turn: ApiTurn,
}

pub(super) fn parse(
    api: &OpenAiApi,
    key: &KeyCaller,
    r: ChatRequest,
) -> Result<Asked, OpenAiError> {
    refuse_unsupported(&r)?;
    let grounded = r.model == api.settings.grounded_model;
    let model = if grounded {
        ApiModel::Grounded
    } else if api.services.chat.api_models().contains(&r.model) {
        ApiModel::Plain(r.model.clone())
    } else {
        return Err(OpenAiError::unknown_model(&r.model));
    };
    if r.messages.is_empty() || r.messages.len() > api.settings.max_messages {
        return Err(OpenAiError::invalid(
            "messages",
            format!(
                "`messages` holds 1 to {} messages.",
                api.settings.max_messages
            ),
        ));
    }
    let stream = r.stream.unwrap_or(false);
    if r.stream_options.is_some() && !stream {
        return Err(OpenAiError::invalid(
            "stream_options",
            "`stream_options` is only allowed when `stream` is true.",
        ));
    }
    let sampling = sampling(&r)?;
    let max_message_chars = api.services.chat.limits().max_message_chars;
    let (instructions, mut turns) = conversation(r.messages, &api.settings, max_message_chars)?;
    let question = match turns.pop() {
        Some((Role::User, question)) => question,
        _ => {
            return Err(OpenAiError::invalid(
                "messages",
                "The last message (besides system messages) must be the user's.",
            ))
        }
    };
    // Checked before the request counts against the caller's limits.
    api.services
        .chat
        .check_message(&question)
        .map_err(|e| OpenAiError::from(e).with_param("messages"))?;
    Ok(Asked {
        model: r.model,
        grounded,
        stream,
        include_usage: r.stream_options.is_some_and(|o| o.include_usage),
        turn: ApiTurn {
            model,
            instructions,
            history: turns,
            question,
            max_tokens: sampling.max_tokens,
            temperature: sampling.temperature,
            top_p: sampling.top_p,
            stop: sampling.stop,
            key_id: key.holder.key_id.clone(),
            key_name: key.holder.key_name.clone(),
        },
    })
}

/// What the request asks that this API doesn't do: a clear 400 rather
/// than an answer that quietly ignored it.
fn refuse_unsupported(r: &ChatRequest) -> Result<(), OpenAiError> {
    let set = |v: &Option<serde_json::Value>| {
        v.as_ref().is_some_and(|v| {
            !v.is_null() && v != &serde_json::json!([]) && v != &serde_json::json!("none")
        })
    };
    if r.n.is_some_and(|n| n != 1) {
        return Err(OpenAiError::unsupported(
            "n",
            "Only one choice per request is supported (`n` must be 1).",
        ));
    }
    for (param, value) in [
        ("tools", &r.tools),
        ("tool_choice", &r.tool_choice),
        ("functions", &r.functions),
        ("function_call", &r.function_call),
    ] {
        if set(value) {
            return Err(OpenAiError::unsupported(
                param,
                "Tools and function calling are not supported by this API.",
            ));
        }
    }
    if r.logprobs == Some(true) || r.top_logprobs.is_some_and(|n| n > 0) {
        return Err(OpenAiError::unsupported(
            "logprobs",
            "Log probabilities are not supported by this API.",
        ));
    }
    let text_format = r
        .response_format
        .as_ref()
        .is_none_or(|f| f.is_null() || f.get("type").and_then(|t| t.as_str()) == Some("text"));
    if !text_format {
        return Err(OpenAiError::unsupported(
            "response_format",
            "Only text responses are supported (`response_format` {\"type\": \"text\"}).",
        ));
    }
    let audio = r.audio.as_ref().is_some_and(|a| !a.is_null())
        || r.modalities
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| m != "text"));
    if audio {
        return Err(OpenAiError::unsupported(
            "modalities",
            "Only text output is supported.",
        ));
    }
    Ok(())
}

/// The request's system messages (joined) and its user and assistant turns.
type Conversation = (Option<String>, Vec<(Role, String)>);

fn conversation(
    messages: Vec<RequestMessage>,
    limits: &ApiSettings,
    max_message_chars: usize,
) -> Result<Conversation, OpenAiError> {
    let mut total = 0usize;
    let mut instructions = Vec::new();
    let mut turns = Vec::new();
    for (i, message) in messages.into_iter().enumerate() {
        if message.tool_calls.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(OpenAiError::unsupported(
                &format!("messages[{i}].tool_calls"),
                "Tool calls are not supported by this API.",
            ));
        }
        let text = text_of(i, message.content)?;
        let chars = text.chars().count();
        total += chars;
        // Answers sent back as history may be long; what a person or a
        // script wrote is held to the browser's limit.
        if message.role != "assistant" && chars > max_message_chars {
            return Err(OpenAiError::invalid(
                &format!("messages[{i}].content"),
                format!("This message is too long: {chars} characters (the limit is {max_message_chars})."),
            ));
        }
        if total > limits.max_conversation_chars {
            return Err(OpenAiError::invalid(
                "messages",
                format!(
                    "The messages are too long together: over {} characters.",
                    limits.max_conversation_chars
                ),
            )
            .with_code("context_length_exceeded"));
        }
        match message.role.as_str() {
            "system" | "developer" => {
                if !text.trim().is_empty() {
                    instructions.push(text);
                }
            }
            "user" => turns.push((Role::User, text)),
            "assistant" => turns.push((Role::Assistant, text)),
            "tool" | "function" => {
                return Err(OpenAiError::unsupported(
                    &format!("messages[{i}].role"),
                    "Tool and function messages are not supported by this API.",
                ))
            }
            other => {
                return Err(OpenAiError::invalid(
                    &format!("messages[{i}].role"),
                    format!("Unknown role {other:?}: use system, developer, user or assistant."),
                ))
            }
        }
    }
    let instructions = (!instructions.is_empty()).then(|| instructions.join("\n\n"));
    Ok((instructions, turns))
}

/// A message's text: a string, or its text parts joined (images, audio and
/// files are refused: the models here read text).
fn text_of(i: usize, content: Option<Content>) -> Result<String, OpenAiError> {
    match content {
        None => Ok(String::new()),
        Some(Content::Text(text)) => Ok(text),
        Some(Content::Parts(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.into_iter().enumerate() {
                if part.kind != "text" {
                    return Err(OpenAiError::unsupported(
                        &format!("messages[{i}].content[{j}].type"),
                        format!(
                            "Content of type {:?} is not supported: the models here read text only.",
                            part.kind
                        ),
                    ));
                }
                texts.push(part.text.unwrap_or_default());
            }
            Ok(texts.join("\n"))
        }
    }
}

struct Sampling {
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    stop: Vec<String>,
}

fn sampling(r: &ChatRequest) -> Result<Sampling, OpenAiError> {
    if r.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        return Err(OpenAiError::invalid(
            "temperature",
            "`temperature` is between 0 and 2.",
        ));
    }
    if r.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
        return Err(OpenAiError::invalid(
            "top_p",
            "`top_p` is above 0 and at most 1.",
        ));
    }
    let max_tokens = r.max_completion_tokens.or(r.max_tokens);
    if max_tokens == Some(0) {
        return Err(OpenAiError::invalid(
            "max_tokens",
            "`max_tokens` is at least 1.",
        ));
    }
    let stop = match &r.stop {
        None => Vec::new(),
        Some(StopField::One(stop)) => vec![stop.clone()],
        Some(StopField::Many(stops)) => stops.clone(),
    };
    if stop.len() > MAX_STOPS
        || stop
            .iter()
            .any(|s| s.is_empty() || s.chars().count() > MAX_STOP_CHARS)
    {
        return Err(OpenAiError::invalid(
            "stop",
            format!("`stop` holds up to {MAX_STOPS} non-empty sequences of at most {MAX_STOP_CHARS} characters."),
        ));
    }
    Ok(Sampling {
        max_tokens,
        temperature: r.temperature,
        top_p: r.top_p,
        stop,
    })
}
