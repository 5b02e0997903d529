// The timer wheel behind the system clock, driven by a hand-moved time source.

import { describe, it, expect, vi, afterEach } from 'vitest';
import { TimerWheel } from '../../src/base/timer-wheel.js';

function wheel() {
  let t = 1_000_000;
  const w = new TimerWheel(() => t);
  const move = (ms: number): void => {
    t += ms;
    w.advance();
  };
  return { w, move };
}

describe('TimerWheel', () => {
  it('passes a timer its argument, and lets go of it once fired or cleared', () => {
    const { w, move } = wheel();
    const got: string[] = [];
    const handler = (who: { name: string }): void => void got.push(who.name);
    const a = { name: 'a' };
    const b = { name: 'b' };
    const ha = w.setTimer(10, handler, a);
    const hb = w.setTimer(20, handler, b);
    move(15);
    expect(got).toEqual(['a']);
    expect((ha as { arg?: unknown }).arg).toBeUndefined();
    w.clearTimer(hb);
    expect((hb as { arg?: unknown }).arg).toBeUndefined();
    move(20);
    expect(got).toEqual(['a']);
  });

  it('fires each timer once, not before its time and within one tick after', () => {
    const { w, move } = wheel();
    const fired: string[] = [];
    w.setTimer(500, () => fired.push('a'));
    w.setTimer(32_000, () => fired.push('h'));
    w.setTimer(5, () => fired.push('b'));
    move(4);
    expect(fired).toEqual([]);
    move(11);
    expect(fired).toEqual(['b']);
    move(480);
    expect(fired).toEqual(['b']);
    move(20);
    expect(fired).toEqual(['b', 'a']);
    move(31_490);
    expect(fired).toEqual(['b', 'a', 'h']);
    expect(w.size).toBe(0);
  });

  it('a cleared timer never fires and is forgotten at once', () => {
    const { w, move } = wheel();
    let n = 0;
    const h = w.setTimer(100, () => n++);
    w.clearTimer(h);
    w.clearTimer(h);
    expect(w.size).toBe(0);
    move(200);
    expect(n).toBe(0);
  });

  it('timers longer than one turn of the wheel wait for their turn', () => {
    const { w, move } = wheel();
    let n = 0;
    w.setTimer(100_000, () => n++);
    for (let i = 0; i < 99; i++) move(1000);
    expect(n).toBe(0);
    move(1010);
    expect(n).toBe(1);
  });

  it('a callback may clear a timer of the same slot and arm new ones', () => {
    const { w, move } = wheel();
    const fired: string[] = [];
    const handles: ReturnType<typeof w.setTimer>[] = [];
    w.setTimer(50, () => {
      fired.push('first');
      for (const h of handles) w.clearTimer(h);
      w.setTimer(0, () => fired.push('rearmed'));
    });
    handles.push(w.setTimer(50, () => fired.push('other')));
    move(60);
    expect(fired).toContain('first');
    // Whichever of the two ran first, the other was either cleared or ran: never both after clearing.
    expect(fired.filter((f) => f === 'other').length).toBeLessThanOrEqual(1);
    move(20);
    expect(fired).toContain('rearmed');
  });

  it('catches up after a stall longer than a whole turn', () => {
    const { w, move } = wheel();
    let n = 0;
    for (let i = 1; i <= 100; i++) w.setTimer(i * 100, () => n++);
    move(60_000);
    expect(n).toBe(100);
  });

  it('keeps its Node interval while timers come and go, and stops it after 100 ms of ticks with none', () => {
    const { w, move } = wheel();
    expect(w.ticking).toBe(false);
    const a = w.setTimer(500, () => {});
    expect(w.ticking).toBe(true);
    w.clearTimer(a);
    // Cleared, nothing pending: still ticking.
    expect(w.size).toBe(0);
    expect(w.ticking).toBe(true);
    move(10);
    expect(w.ticking).toBe(true);
    // Timers armed and cleared between ticks (a redirect over TCP) leave every tick with none.
    for (let i = 0; i < 9; i++) {
      w.clearTimer(w.setTimer(500, () => {}));
      move(10);
      expect(w.ticking, `tick ${i}`).toBe(true);
    }
    move(10);
    expect(w.ticking).toBe(false);
    expect(w.sleeping).toBe(false);
    // A timer due soon at a tick starts the quiet time over.
    let fired = 0;
    w.setTimer(20, () => fired++);
    expect(w.ticking).toBe(true);
    move(10);
    move(20);
    expect(fired).toBe(1);
    move(90);
    expect(w.ticking).toBe(true);
    move(10);
    expect(w.ticking).toBe(false);
    w.clear();
  });
});

describe('TimerWheel on Node timers', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('waits on one Node timeout while its timers are far off, and still fires each on time', () => {
    vi.useFakeTimers({
      toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'],
    });
    const w = new TimerWheel();
    let ticks = 0;
    const advance = w.advance.bind(w);
    w.advance = () => {
      ticks++;
      advance();
    };
    const start = performance.now();
    const fired: [string, number][] = [];
    const at = (name: string) => () => void fired.push([name, performance.now() - start]);
    w.setTimer(2_000, at('probe'));
    w.setTimer(30_000, at('timer J'));
    vi.advanceTimersByTime(200);
    // 100 ms of ticks with nothing due within the next ten: asleep on one timeout.
    expect(w.ticking).toBe(false);
    expect(w.sleeping).toBe(true);
    expect(vi.getTimerCount()).toBe(1);
    // A nearer timer wakes it; a later one does not.
    w.setTimer(40_000, at('later'));
    expect(w.sleeping).toBe(true);
    w.setTimer(300, at('near'));
    expect(w.ticking).toBe(true);
    vi.advanceTimersByTime(45_000);
    expect(fired.map(([n]) => n)).toEqual(['near', 'probe', 'timer J', 'later']);
    const due: Record<string, number> = { near: 500, probe: 2_000, 'timer J': 30_000, later: 40_200 };
    for (const [name, t] of fired) {
      expect(t, name).toBeGreaterThanOrEqual(due[name]!);
      expect(t, name).toBeLessThanOrEqual(due[name]! + 2 * 10);
    }
    // Ticking all along would have been 4,500 ticks; each wake ticks for about 100 ms.
    expect(ticks).toBeLessThan(100);
    // Nothing pending: no Node timer left at all.
    expect(w.size).toBe(0);
    expect(w.ticking || w.sleeping).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('ticks without sleeping while timers fall due every few ticks', () => {
    vi.useFakeTimers({
      toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'performance'],
    });
    const w = new TimerWheel();
    let fired = 0;
    // A timer falling due every 30 ms for two seconds (a proxy under light load).
    for (let i = 1; i <= 66; i++) w.setTimer(i * 30, () => fired++);
    for (let t = 0; t < 2_000; t += 10) {
      vi.advanceTimersByTime(10);
      expect(w.sleeping, `at ${t} ms`).toBe(false);
    }
    expect(fired).toBe(66);
    w.clear();
  });
});
