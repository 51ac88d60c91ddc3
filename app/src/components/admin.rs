//! Administration: the accounts, their roles and access.

use crate::api::{allow_sharing, list_users, set_user_disabled, set_user_role};
use crate::wire::{UserRole, UserSummary};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_meta::Title;

#[component]
pub fn UsersPage() -> impl IntoView {
    let version = RwSignal::new(0u32);
    let users = Resource::new(move || version.get(), |_| list_users());
    let error = RwSignal::new(None::<String>);
    let apply = move |change: Change| {
        spawn_local(async move {
            let done = match change {
                Change::Role(id, role) => set_user_role(id, role).await,
                Change::Disabled(id, disabled) => set_user_disabled(id, disabled).await,
                Change::Sharing(id, allowed) => allow_sharing(id, allowed).await,
            };
            error.set(done.err().map(|e| e.to_string()));
            version.update(|v| *v += 1);
        });
    };

    view! {
        <Title text="Users · RAG Chat" />
        <section class="admin-page">
            <div class="column">
            <header class="page-head">
                <h1>"Users"</h1>
            </header>
            <p class="form-error" role="alert">{move || error.get()}</p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match users.await {
                        Ok(list) => {
                            view! {
                                <div class="table-scroll">
                                    <table class="data-table users">
                                        <thead>
                                            <tr>
                                                <th scope="col">"Username"</th>
                                                <th scope="col">"Role"</th>
                                                <th scope="col">"Access"</th>
                                                <th scope="col" title="May make shared collections">"May share"</th>
                                                <th scope="col" class="num">"Chats"</th>
                                                <th scope="col" class="num">"Documents"</th>
                                                <th scope="col" class="num">"Tokens today"</th>
                                                <th scope="col">"Joined"</th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            {list.users.into_iter().map(|u| user_row(u, apply)).collect_view()}
                                        </tbody>
                                    </table>
                                </div>
                                <p class="muted small">
                                    {format!("{} guests (people chatting without an account) are not listed.", list.guests)}
                                </p>
                            }
                                .into_any()
                        }
                        Err(e) => view! { <p class="notice" role="alert">{e.to_string()}</p> }.into_any(),
                    }
                })}
            </Transition>
            </div>
        </section>
    }
}

#[derive(Clone)]
enum Change {
    Role(String, UserRole),
    Disabled(String, bool),
    Sharing(String, bool),
}

fn user_row(user: UserSummary, apply: impl Fn(Change) + Copy + 'static) -> impl IntoView {
    let id = user.id.clone();
    let id_for_access = user.id.clone();
    let id_for_sharing = user.id.clone();
    let is_admin = user.role == UserRole::Admin;
    let disabled = user.disabled;
    let label = format!("Role of {}", user.username);
    view! {
        <tr class="user" class:disabled=disabled data-username=user.username.clone()>
            <td>{user.username.clone()}</td>
            <td>
                <select
                    aria-label=label
                    on:change=move |ev| {
                        let role = if event_target_value(&ev) == "admin" { UserRole::Admin } else { UserRole::User };
                        apply(Change::Role(id.clone(), role));
                    }
                >
                    <option value="user" selected={user.role == UserRole::User}>"User"</option>
                    <option value="admin" selected={user.role == UserRole::Admin}>"Admin"</option>
                </select>
            </td>
            <td>
                <span class="access-state">{if disabled { "Disabled" } else { "Active" }}</span>
                " "
                <button
                    class="link-button"
                    on:click=move |_| apply(Change::Disabled(id_for_access.clone(), !disabled))
                >
                    {if disabled { "Enable" } else { "Disable" }}
                </button>
            </td>
            <td>
                <input
                    type="checkbox"
                    aria-label=format!("{} may share", user.username)
                    title=if is_admin { "Administrators always may make shared collections" } else { "May make shared collections" }
                    checked=user.can_share || is_admin
                    disabled=is_admin
                    on:change=move |ev| apply(Change::Sharing(id_for_sharing.clone(), event_target_checked(&ev)))
                />
            </td>
            <td class="num">{user.conversations}</td>
            <td class="num">{user.documents}</td>
            <td class="num">{user.tokens_today}</td>
            <td>{crate::components::documents::format_date(user.created_at)}</td>
        </tr>
    }
}
