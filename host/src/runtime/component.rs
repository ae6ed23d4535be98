//! What one manifest component is allowed to do, resolved once at start-up.

use std::sync::Arc;

use super::outbound::{InvalidOutboundHost, OutboundPolicy};
use super::variables::{AppVariables, ComponentVariables};
use crate::manifest::ComponentDecl;

/// The resolved, immutable permissions of one component.
#[derive(Debug)]
pub struct ComponentContext {
    pub id: Arc<str>,
    pub outbound: Arc<OutboundPolicy>,
    pub key_value_stores: Vec<String>,
    pub variables: ComponentVariables,
}

impl ComponentContext {
    /// Expands templates in the component's settings against the app variables.
    pub fn resolve(decl: &ComponentDecl, app: &AppVariables) -> Result<Self, InvalidOutboundHost> {
        let hosts: Vec<String> = decl
            .allowed_outbound_hosts
            .iter()
            .map(|h| app.expand(h))
            .collect();
        Ok(Self {
            id: Arc::from(decl.id.as_str()),
            outbound: Arc::new(OutboundPolicy::parse(hosts.iter().map(String::as_str))?),
            key_value_stores: decl.key_value_stores.clone(),
            variables: ComponentVariables::new(&decl.variables, app),
        })
    }
}
