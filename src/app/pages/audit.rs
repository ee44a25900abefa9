use crate::app::components::PageMeta;
use crate::{
    app::{
        components::{page_error, Field, PageSizeSelect, Pager},
        error::AppError,
        pages::admin::{AdminNav, FilterSelect},
        server::{list_audit_events, DEFAULT_PAGE_SIZE},
    },
    domain::{device_name, AuditEventType, AuditEventView, AuditPage},
};
use leptos::prelude::*;
use leptos_router::{components::Form, hooks::use_query_map};

/// The query-string filters of the page, kept by the pager's links.
const FILTERS: &[&str] = &["user_id", "event_type", "since", "until", "per_page"];

/// `/admin/audit`: the security audit log, newest first, with filters (a
/// GET form, so it works without JavaScript) and paging.
#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let param = move |name: &str| query.read().get(name).filter(|v| !v.is_empty());
    let page = Resource::new(
        move || {
            (
                param("user_id"),
                param("event_type"),
                param("since"),
                param("until"),
                param("page").and_then(|v| v.parse::<i64>().ok()),
                param("per_page").and_then(|v| v.parse::<i64>().ok()),
            )
        },
        |(user_id, event_type, since, until, page, per_page)| {
            list_audit_events(user_id, event_type, since, until, page, per_page)
        },
    );
    view! {
        <PageMeta title="Audit log" description="The security audit log of this leptos-auth server: sign-ins, failures and account changes, filtered by user, type and day."/>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(result) => view! {
                        <section class="card">
                            <AdminNav current="audit"/>
                            <h1>"Audit log"</h1>
                            <p class="muted">"Security events: sign-ins, sign-outs and account changes. Times are in UTC."</p>
                            <AuditFilters error=None/>
                            <AuditTable page=result.clone()/>
                            <Pager path="/admin/audit" keep=FILTERS total=result.total offset=result.offset limit=result.limit newer_first=true/>
                        </section>
                    }
                    .into_any(),
                    // A malformed filter: the form again, saying what is wrong.
                    Err(err @ AppError::Invalid { .. }) => view! {
                        <section class="card">
                            <AdminNav current="audit"/>
                            <h1>"Audit log"</h1>
                            <AuditFilters error=Some(err)/>
                        </section>
                    }
                    .into_any(),
                    Err(err) => page_error(err),
                }
            })}
        </Suspense>
    }
}

#[component]
fn AuditFilters(error: Option<AppError>) -> impl IntoView {
    let query = use_query_map();
    let get = move |name: &str| query.read_untracked().get(name).unwrap_or_default();
    let per_page = get("per_page").parse::<i64>().unwrap_or(DEFAULT_PAGE_SIZE);
    let error = Signal::stored(error);
    let type_options: Vec<(&'static str, &'static str)> = AuditEventType::ALL
        .iter()
        .map(|kind| (kind.as_str(), kind.label()))
        .collect();
    let type_error = error
        .get_untracked()
        .and_then(|e| e.for_field("event_type"));
    view! {
        <Form method="GET" action="/admin/audit" attr:class="filters" attr:role="search" attr:aria-label="Filter events">
            <Field name="user_id" label="User id" kind="number" value=get("user_id") error required=false/>
            <FilterSelect name="event_type" label="Event type" selected=get("event_type") options=type_options error=type_error/>
            <Field name="since" label="From (UTC day)" kind="date" value=get("since") error required=false/>
            <Field name="until" label="To (UTC day)" kind="date" value=get("until") error required=false/>
            <PageSizeSelect selected=per_page/>
            <button type="submit" class="button">"Filter"</button>
        </Form>
    }
}

#[component]
fn AuditTable(page: AuditPage) -> impl IntoView {
    let total = page.total;
    let first = page.offset + 1;
    let last = page.offset + page.events.len() as i64;
    let count = match (total, page.events.is_empty()) {
        (1, false) => "1 event found".to_owned(),
        (_, false) => format!("{total} events found, showing {first}–{last}"),
        (0, _) => "No events found".to_owned(),
        (_, true) => format!("{total} events found, none on this page"),
    };
    view! {
        <p class="muted" data-testid="audit-count">{count}</p>
        <div class="table-wrap" role="region" aria-label="Audit events" tabindex="0">
            <table class="audit-table" data-testid="audit-events">
                <thead>
                    <tr>
                        <th scope="col">"Time (UTC)"</th>
                        <th scope="col">"Event"</th>
                        <th scope="col">"Actor"</th>
                        <th scope="col">"Subject"</th>
                        <th scope="col" class="nowrap">"IP address"</th>
                        <th scope="col">"Device"</th>
                    </tr>
                </thead>
                <tbody>
                    {page.events.into_iter().map(|event| view! { <AuditRow event/> }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

#[component]
fn AuditRow(event: AuditEventView) -> impl IntoView {
    let summary = event.summary();
    view! {
        <tr data-testid="audit-event" data-event-type=event.event_type.as_str()>
            <td class="nowrap">
                <time datetime=event.at.to_rfc3339()>{event.at.format("%Y-%m-%d %H:%M:%S").to_string()}</time>
            </td>
            <td>{summary}</td>
            <td class="nowrap">{user_link(event.actor_user_id)}</td>
            <td class="nowrap">{user_link(event.subject_user_id)}</td>
            <td class="nowrap">{event.ip.unwrap_or_else(|| "unknown".to_owned())}</td>
            <td>{device_name(event.user_agent.as_deref())}</td>
        </tr>
    }
}

/// A link to the user's admin page, or a dash (anonymous, or the operator).
fn user_link(id: Option<i64>) -> AnyView {
    match id {
        Some(id) => {
            view! { <a href=format!("/admin/users/{id}")>{format!("User {id}")}</a> }.into_any()
        }
        None => view! { <span class="muted" title="No account">"—"</span> }.into_any(),
    }
}
