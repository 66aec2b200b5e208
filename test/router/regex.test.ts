import t from 'tap';
import { RE2JS } from 're2js';
import { compileFullMatch, literalHead } from '../../gateway/router/regex.js';

t.test('literalHead takes the literal text every full match starts with', async (t) => {
  t.equal(literalHead('/api/users/[0-9]+/carts/3'), '/api/users/');
  t.equal(literalHead('^/api/v1/.*'), '/api/v1/', 'a leading ^ anchors nothing more under full-match');
  t.equal(literalHead('/items/42(/reviews)?'), '/items/42');
  t.equal(literalHead('/abc+'), '/abc', '+ keeps the char it repeats');
});

t.test('literalHead proves nothing where the head could be skipped or changed', async (t) => {
  t.equal(literalHead('/abc?'), '/ab', 'a char made optional by ? leaves the head');
  t.equal(literalHead('/ab*'), '/a');
  t.equal(literalHead('/a{0,2}'), '/');
  t.equal(literalHead('/api|/admin'), '', 'top-level alternation');
  t.equal(literalHead('(/api)|x'), '');
  t.equal(literalHead('/a[|]b'), '/a', 'a | inside a class is no alternation');
  t.equal(literalHead('/a[]|]b'), '/a', 'a ] first in a class is a member');
  t.equal(literalHead('/a\\|b'), '/a', 'an escaped | is no alternation');
  t.equal(literalHead('(?i)/ADMIN'), '', 'flags');
  t.equal(literalHead('\\/api'), '', 'escapes end the head');
  t.equal(literalHead('.*'), '');
  t.equal(literalHead('/a.b'), '/a');
  t.equal(literalHead('/é/x'), '/', 'non-ASCII ends the head');
});

t.test('the head filter never rejects a value the regex matches (random patterns)', async (t) => {
  const atoms = ['/', 'a', 'b', 'ab', '.', '[ab]', '[|]', '\\|', '(a|b)', '(?i)A', '|', '^', '$', '\\d', '-', 'é'];
  const quantifiers = ['', '', '', '?', '*', '+', '{0,1}', '{2}', '+?'];
  let seed = 7;
  const random = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const inputs = ['', '/', 'a', 'b', 'ab', '/a', '/ab', '/b', 'aa', '/aab', '|', 'A', '/A', '1', '/1', 'é', '/é', '-', 'a-b', '/ab/ab'];
  let checked = 0;
  let disagreements = 0;
  for (let round = 0; round < 3000; round++) {
    let pattern = '';
    const length = 1 + random(5);
    for (let index = 0; index < length; index++) {
      const atom = atoms[random(atoms.length)] as string;
      pattern += atom + (atom === '|' || atom === '^' || atom === '$' ? '' : (quantifiers[random(quantifiers.length)] as string));
    }
    let regex: RE2JS;
    try {
      regex = RE2JS.compile(pattern);
    } catch {
      continue;
    }
    const filtered = compileFullMatch(pattern, ['regex']);
    for (const input of inputs) {
      checked++;
      if (regex.testExact(input) !== filtered(input)) disagreements++;
    }
  }
  t.ok(checked > 20_000, `checked ${checked} pattern/input pairs`);
  t.equal(disagreements, 0);
});
