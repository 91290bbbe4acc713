import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DefinitionError, parseDefinitionFile } from '../../src/build/deffile.js';

const EVERY_SECTION = `# a comment before the header
Bootstrap: library   # trailing comment
From: test/base/busybox:1
Fingerprints: 0123456789ABCDEF\\
 FEDCBA

%arguments
    GREETING=hello

%setup
    touch \${SINGULARITY_ROOTFS}/setup-ran

%files
    data/*.txt /opt/data/
    "with space.txt" '/opt/other name.txt'
    # skipped
    plain.txt

%environment
    export GREETING={{ GREETING }}

%post -c /bin/sh
    echo post
    echo 'export FROM_POST=1' >> $SINGULARITY_ENVIRONMENT

%runscript
    #!/bin/sh -e
    echo "run $@"

%startscript
    echo start

%test
    test -f /setup-ran

%labels
    Author me@example.org
    Version 1.0 beta
    # not a label

%help
    This is help.

%post
    echo second post

%appinstall tool
    echo installing tool
%apprun tool
    echo running tool
%applabels tool
    Kind cli
%appfiles tool
    tool.txt
%appenv tool
    TOOL=1
%apphelp tool
    tool help
%apptest tool
    true
%appstart tool
    echo start tool
`;

describe('definition file parser', () => {
  test('every header and section Apptainer accepts', () => {
    const [d, ...more] = parseDefinitionFile(EVERY_SECTION);
    assert.equal(more.length, 0);
    assert.deepEqual(d!.header, { bootstrap: 'library', from: 'test/base/busybox:1', fingerprints: '0123456789ABCDEF FEDCBA' });
    assert.equal(d!.fullRaw, EVERY_SECTION);
    assert.deepEqual(d!.arguments, { GREETING: 'hello' });
    assert.equal(d!.scripts.environment!.script, 'export GREETING=hello');
    assert.deepEqual(d!.scripts.post, { script: "echo post\n    echo 'export FROM_POST=1' >> $SINGULARITY_ENVIRONMENT\necho second post", args: '-c /bin/sh' });
    assert.equal(d!.scripts.runscript!.script, '#!/bin/sh -e\n    echo "run $@"');
    assert.equal(d!.scripts.setup!.script, 'touch ${SINGULARITY_ROOTFS}/setup-ran');
    assert.equal(d!.scripts.startscript!.script, 'echo start');
    assert.equal(d!.scripts.test!.script, 'test -f /setup-ran');
    assert.equal(d!.scripts.help!.script, 'This is help.');
    assert.deepEqual(d!.files, [{
      fromStage: null,
      files: [
        { src: 'data/*.txt', dst: '/opt/data/' },
        { src: 'with space.txt', dst: '/opt/other name.txt' },
        { src: 'plain.txt', dst: 'plain.txt' },
      ],
    }]);
    assert.deepEqual(d!.labels, [['Author', 'me@example.org'], ['Version', '1.0 beta']]);
    assert.equal(d!.apps.length, 1);
    const app = d!.apps[0]!;
    assert.equal(app.name, 'tool');
    assert.equal(app.install!.script, 'echo installing tool');
    assert.equal(app.run!.script, 'echo running tool');
    assert.deepEqual(app.labels, [['Kind', 'cli']]);
    assert.deepEqual(app.files, [{ src: 'tool.txt', dst: 'tool.txt' }]);
    assert.equal(app.env!.script, 'TOOL=1');
    assert.equal(app.help!.script, 'tool help');
    assert.equal(app.test!.script, 'true');
    assert.equal(app.start!.script, 'echo start tool');
  });

  test('multi-stage with Stage: and %files from', () => {
    const text = 'Bootstrap: scratch\nStage: one\n\n%setup\n  echo a\n\nBootstrap: library\nFrom: a/b/c:1\nStage: two\n\n%files from one\n  /a /b\n%files\n  x\n';
    const stages = parseDefinitionFile(text);
    assert.equal(stages.length, 2);
    assert.deepEqual(stages.map((s) => s.stage), ['one', 'two']);
    assert.deepEqual(stages[1]!.files, [{ fromStage: 'one', files: [{ src: '/a', dst: '/b' }] }, { fromStage: null, files: [{ src: 'x', dst: 'x' }] }]);
    assert.ok(stages.every((s) => s.fullRaw === text));
    assert.ok(stages[0]!.raw.startsWith('Bootstrap: scratch') && stages[1]!.raw.startsWith('Bootstrap: library'));
  });

  test('section names and header keys are case-insensitive; continuation with \\n keeps a newline', () => {
    const [d] = parseDefinitionFile('BOOTSTRAP: docker\nFROM: alpine\nSetOpt: a\\n\\\n b\n%POST\n echo x\n');
    assert.equal(d!.header.bootstrap, 'docker');
    assert.equal(d!.header.setopt, 'a\nb');
    assert.equal(d!.scripts.post!.script, 'echo x');
  });

  test('bad input is refused with a clear message', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /empty/],
      ['   \n\n', /empty/],
      ['Bootstrap: scratch\nColour: blue\n', /invalid header keyword found: colour/],
      ['Bootstrap: scratch\n%bogus\n  x\n', /invalid section %bogus/],
      ['From: x\n%post\n true\n', /no Bootstrap header/],
      ['Bootstrap: scratch\nnot a header line\n', /not KEY: VALUE/],
      ['Bootstrap: scratch\n%files\n a b c\n', /more than a source/],
      ['Bootstrap: scratch\n%files to x\n a\n', /%files from STAGE/],
      ['Bootstrap: scratch\n%files from nowhere\n a\n', /no earlier stage/],
      ['Bootstrap: scratch\n%post\n echo {{ missing }}\n', /build argument missing has no value/],
      ['Bootstrap: scratch\n%arguments\n oops\n', /NAME=VALUE/],
      ['Bootstrap: scratch\n%apprun\n x\n', /needs an app name/],
      ['Bootstrap: scratch\n\nBootstrap: scratch\n', /names every earlier stage/],
      ['Bootstrap: scratch\nStage: a\nBootstrap: scratch\nStage: a\n', /used twice/],
    ];
    for (const [text, err] of cases) {
      assert.throws(() => parseDefinitionFile(text), (e: unknown) => e instanceof DefinitionError && err.test(e.message), JSON.stringify(text));
    }
  });

  test('build arguments given at build time win over %arguments defaults', () => {
    const [d] = parseDefinitionFile('Bootstrap: scratch\n%arguments\n V=1\n%labels\n v {{V}}\n', { V: '2' });
    assert.deepEqual(d!.labels, [['v', '2']]);
  });
});
