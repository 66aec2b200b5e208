/**
 * Who may publish and subscribe to which topic of a pub/sub component, from its metadata, as Dapr
 * documents it (`pubsub-scopes.md`, `pkg/runtime/pubsub IsOperationAllowed`), compiled once per snapshot:
 * - `allowedTopics: t1,t2`: no app may use any other topic;
 * - `publishingScopes` / `subscriptionScopes: app1=t1,t2;app2=`: an app listed there may use only the
 *   topics listed for it (`app2=`: none); an app not listed may use any topic…
 * - …except `protectedTopics: t3`, which only apps that list it may use.
 */
import { BrokerConfigError } from './broker.js';

export interface TopicScopes {
  mayPublish(topic: string): boolean;
  maySubscribe(topic: string): boolean;
}

function topicList(text: string): Set<string> {
  return new Set(
    text
      .split(',')
      .map((topic) => topic.trim())
      .filter((topic) => topic !== ''),
  );
}

/** This app's topics in a `app1=t1,t2;app2=t3` scope string, or null when the app is not listed. */
function scopedTopics(field: string, text: string | undefined, appId: string): Set<string> | null {
  if (text === undefined || text.trim() === '') return null;
  let mine: Set<string> | null = null;
  for (const scope of text.split(';')) {
    if (scope.trim() === '') continue;
    const equals = scope.indexOf('=');
    if (equals === -1) throw new BrokerConfigError(field, `expected "appId=topic1,topic2" entries separated by ";", got ${JSON.stringify(scope)}`);
    if (scope.slice(0, equals).trim() !== appId) continue;
    mine ??= new Set();
    for (const topic of topicList(scope.slice(equals + 1))) mine.add(topic);
  }
  return mine;
}

export function compileTopicScopes(metadata: Readonly<Record<string, string>>, appId: string): TopicScopes {
  const allowed = metadata['allowedTopics'] === undefined ? null : topicList(metadata['allowedTopics']);
  const allowedSet = allowed !== null && allowed.size > 0 ? allowed : null;
  const protectedTopics = topicList(metadata['protectedTopics'] ?? '');
  const publishing = scopedTopics('publishingScopes', metadata['publishingScopes'], appId);
  const subscribing = scopedTopics('subscriptionScopes', metadata['subscriptionScopes'], appId);
  const decide = (scoped: Set<string> | null, topic: string): boolean => {
    if (allowedSet !== null && !allowedSet.has(topic)) return false;
    if (scoped !== null) return scoped.has(topic);
    return !protectedTopics.has(topic);
  };
  return {
    mayPublish: (topic) => decide(publishing, topic),
    maySubscribe: (topic) => decide(subscribing, topic),
  };
}
