//! Diesel table definitions shared by both backends. Written by hand against
//! `migrations/{sqlite,postgres}`: every column uses a type both backends map the same way.

diesel::table! {
    users (id) {
        id -> BigInt,
        email -> Text,
        username -> Text,
        name -> Text,
        password_hash -> Text,
        role -> Text,
        is_active -> Bool,
        avatar_url -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> BigInt,
        refresh_hash -> Text,
        csrf_token -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        ip_address -> Nullable<Text>,
        client -> Text,
        created_at -> Timestamp,
        last_activity -> Timestamp,
        expires_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_keys (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        prefix -> Text,
        key_hash -> Text,
        permissions -> Text,
        rate_limit -> Nullable<Integer>,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    agents (id) {
        id -> BigInt,
        owner_id -> BigInt,
        slug -> Text,
        name -> Text,
        description -> Text,
        system_prompt -> Text,
        model -> Nullable<Text>,
        temperature -> Double,
        max_tokens -> Nullable<Integer>,
        avatar_url -> Nullable<Text>,
        learn_from_interaction -> Bool,
        is_public -> Bool,
        capabilities -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        tools -> Text,
    }
}

diesel::table! {
    projects (id) {
        id -> BigInt,
        owner_id -> BigInt,
        name -> Text,
        description -> Text,
        kind -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    chats (id) {
        id -> BigInt,
        user_id -> BigInt,
        agent_id -> Nullable<BigInt>,
        project_id -> Nullable<BigInt>,
        title -> Text,
        model -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        last_message_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    messages (id) {
        id -> BigInt,
        chat_id -> BigInt,
        role -> Text,
        content -> Text,
        model -> Nullable<Text>,
        status -> Text,
        prompt_tokens -> Nullable<Integer>,
        completion_tokens -> Nullable<Integer>,
        latency_ms -> Nullable<BigInt>,
        tool_calls -> Nullable<Text>,
        files -> Text,
        sources -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    collections (id) {
        id -> BigInt,
        owner_id -> BigInt,
        kind -> Text,
        name -> Text,
        description -> Text,
        agent_id -> Nullable<BigInt>,
        chat_id -> Nullable<BigInt>,
        embed_model -> Text,
        index_version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    documents (id) {
        id -> BigInt,
        owner_id -> BigInt,
        collection_id -> BigInt,
        filename -> Text,
        kind -> Text,
        mime_type -> Text,
        file_size -> BigInt,
        sha256 -> Text,
        pages -> Nullable<Integer>,
        status -> Text,
        error -> Nullable<Text>,
        chunks_total -> Integer,
        chunks_embedded -> Integer,
        metadata -> Text,
        source_path -> Nullable<Text>,
        job_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    document_blobs (document_id) {
        document_id -> BigInt,
        bytes -> Binary,
    }
}

diesel::table! {
    document_texts (document_id) {
        document_id -> BigInt,
        text -> Text,
        pages -> Text,
    }
}

diesel::table! {
    chunks (id) {
        id -> BigInt,
        document_id -> BigInt,
        collection_id -> BigInt,
        ordinal -> Integer,
        text -> Text,
        char_start -> BigInt,
        char_end -> BigInt,
        page -> Nullable<Integer>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    chunk_vectors (chunk_id, model) {
        chunk_id -> BigInt,
        model -> Text,
        collection_id -> BigInt,
        embedding -> Binary,
    }
}

diesel::table! {
    memory_entries (id) {
        id -> BigInt,
        user_id -> BigInt,
        agent_id -> Nullable<BigInt>,
        content -> Text,
        metadata -> Text,
        embedding -> Nullable<Binary>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    plugins (id) {
        id -> BigInt,
        name -> Text,
        version -> Text,
        description -> Text,
        installed_by -> Nullable<BigInt>,
        state -> Text,
        failure -> Nullable<Text>,
        manifest -> Text,
        sha256 -> Text,
        module -> Binary,
        signed_by -> Nullable<Text>,
        granted_to_all -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    plugin_kv (plugin_id, key) {
        plugin_id -> BigInt,
        key -> Text,
        value -> Binary,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    plugin_grants (plugin_id, user_id) {
        plugin_id -> BigInt,
        user_id -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    jobs (id) {
        id -> BigInt,
        owner_id -> BigInt,
        api_key_id -> Nullable<BigInt>,
        name -> Text,
        kind -> Text,
        payload -> Text,
        schedule -> Text,
        priority -> Integer,
        max_attempts -> Integer,
        timeout_secs -> Integer,
        state -> Text,
        paused -> Bool,
        outcome -> Nullable<Text>,
        anchor_at -> Timestamp,
        next_run_at -> Nullable<Timestamp>,
        retry_at -> Nullable<Timestamp>,
        run_now -> Bool,
        due_at -> Nullable<Timestamp>,
        attempt -> Integer,
        series -> Nullable<Text>,
        cancel_requested -> Bool,
        current_run_id -> Nullable<BigInt>,
        last_run_id -> Nullable<BigInt>,
        locked_by -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        progress -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    job_runs (id) {
        id -> BigInt,
        job_id -> BigInt,
        attempt -> Integer,
        cause -> Text,
        outcome -> Text,
        worker -> Text,
        output -> Nullable<Text>,
        error -> Nullable<Text>,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    models (id) {
        id -> BigInt,
        key -> Text,
        name -> Text,
        provider -> Text,
        kind -> Text,
        family -> Nullable<Text>,
        path -> Nullable<Text>,
        base_url -> Nullable<Text>,
        api_key -> Nullable<Text>,
        size_bytes -> Nullable<BigInt>,
        version -> Nullable<Text>,
        context_length -> Integer,
        cost_per_1k_input -> Double,
        cost_per_1k_output -> Double,
        max_concurrent -> Integer,
        enabled -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        description -> Text,
        remote_name -> Nullable<Text>,
    }
}

diesel::table! {
    settings (key) {
        key -> Text,
        value -> Text,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    monitoring_samples (id) {
        id -> BigInt,
        node -> Text,
        taken_at -> Timestamp,
        cpu -> Double,
        memory -> Double,
        process_memory -> BigInt,
        requests -> BigInt,
    }
}

diesel::table! {
    usage_daily (day, user_id, api_key_id, model) {
        day -> Date,
        user_id -> BigInt,
        api_key_id -> BigInt,
        model -> Text,
        requests -> BigInt,
        prompt_tokens -> BigInt,
        completion_tokens -> BigInt,
    }
}

diesel::joinable!(usage_daily -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(api_keys -> users (user_id));
diesel::joinable!(agents -> users (owner_id));
diesel::joinable!(chats -> users (user_id));
diesel::joinable!(chats -> agents (agent_id));
diesel::joinable!(messages -> chats (chat_id));
diesel::joinable!(jobs -> users (owner_id));
diesel::joinable!(job_runs -> jobs (job_id));
diesel::joinable!(documents -> collections (collection_id));
diesel::joinable!(chunks -> documents (document_id));
diesel::joinable!(chunk_vectors -> chunks (chunk_id));
diesel::joinable!(document_texts -> documents (document_id));
diesel::joinable!(document_blobs -> documents (document_id));
diesel::joinable!(plugin_kv -> plugins (plugin_id));
diesel::joinable!(plugin_grants -> plugins (plugin_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    sessions,
    api_keys,
    agents,
    projects,
    chats,
    messages,
    collections,
    documents,
    document_texts,
    document_blobs,
    chunks,
    chunk_vectors,
    memory_entries,
    plugins,
    plugin_kv,
    plugin_grants,
    jobs,
    job_runs,
    models,
    settings,
    monitoring_samples,
    usage_daily,
);
